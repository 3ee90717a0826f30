"""The training loop's contract with the jobs: what a job hands the trainer and what it gets back.

The job builds its model, optimizer, lr schedule and data, then calls
:meth:`Trainer.fit <milan_lab.engine.trainer.Trainer.fit>` with

* ``loss_fn(net, batch, ctx) -> loss`` for one (micro-)batch, where ``ctx`` is a frozen
  :class:`StepContext`: ``step`` (from 0; a resumed run goes on from its checkpoint's), ``epoch``,
  ``rank``, ``world_size`` and ``generator``, a ``torch.Generator`` on the device seeded from
  (seed, step, rank) alone, for the job's per-step randomness (pretraining draws its mask noise from
  it, so paired and resumed runs draw the same noise whatever the global RNG went through). With
  ``accum_steps`` > 1 the step's micro-batches share its one context and draw from its generator in
  turn, so each micro-batch gets noise of its own. (Earlier versions gave each micro-batch a generator
  of its own, seeded alike, so image j of every micro-batch got the same mask; runs with
  ``accum_steps`` = 1 draw the numbers they drew then, runs with more micro-batches draw other ones.);
* optionally ``evaluate(ctx) -> row | None`` (``ctx``: an :class:`EvalContext`: steps done, epochs
  done, whether this is the last step) and ``eval_every``, the schedule it runs on (an
  :class:`EvalSchedule`: every N steps or at the end of every N-th epoch; the classifier jobs'
  ``eval_every`` option, pretraining's ``knn_every`` / ``knn_every_steps``). The trainer decides when it
  is due: on rank 0, at the scheduled steps and always after the run's last step (the schedule's end or
  ``max_steps``), never when the schedule is 0; the row it returns is logged beside the losses.
  ``evaluate`` runs on rank 0 only, while the other ranks wait at their next collective: it is the job's
  closure over its own, unwrapped model (``ctx.model``: neither the DDP wrapper nor the compiled module,
  so its forward passes start no gradient all-reduce), and it must not run collectives (all_reduce,
  barrier, a DDP forward): the other ranks would never join them, and the run would hang;
* optionally ``after_step(step)``, run after every step (pretraining keeps encoder snapshots in it).

``fit`` trains the model in place and returns the history (the logged rows); the trained model stays in
memory. :meth:`Trainer.finish <milan_lab.engine.trainer.Trainer.finish>` writes ``metrics.json`` and
returns the job's summary as a :class:`RunResult`: a dict (what the CLI prints as JSON) carrying
``.history`` and ``.model``, which a job function hands back to its caller (a notebook, a study).

These types sit apart from the loop so that a job (or a test, or a study) can read and build them
without the loop's machinery: ``StepContext`` and ``EvalContext`` are what the trainer hands the job's
functions, ``EvalSchedule`` is the job's ``eval_every`` as the trainer reads it, and ``RunResult`` is
what a job returns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from milan_lab.errors import ConfigError

Batches = Callable[[int, int], Iterable]  # (epoch, first batch) -> iterable of global batches


@dataclass(frozen=True)
class StepContext:
    """What a job's ``loss_fn(net, batch, ctx)`` knows of the step it computes.

    ``step``: the step being taken, from 0 (a resumed run goes on from its checkpoint's); ``epoch``: the
    epoch it belongs to (``step // steps_per_epoch``); ``rank`` / ``world_size``: this process and how many
    train together; ``generator``: a ``torch.Generator`` on the training device seeded from (run seed, step,
    rank) alone (:func:`~milan_lab.engine.rng.step_generator`), so a job that draws its random numbers from
    it draws the same in an unbroken, a resumed and a paired run, whatever the global RNG went through.
    One context serves every micro-batch of an accumulated step: they draw from its one generator in turn,
    so each micro-batch gets noise of its own (images j of two micro-batches get different masks)."""
    step: int
    epoch: int
    rank: int
    world_size: int
    generator: torch.Generator


@dataclass(frozen=True)
class EvalContext:
    """What a job's ``evaluate(ctx)`` knows: ``step`` steps are done (``epoch`` epochs, a float), whether
    this is the run's last step (``last``: the schedule's end or ``max_steps``), and ``model``: the model the
    job handed to :meth:`~milan_lab.engine.trainer.Trainer.fit`, unwrapped (no DDP, no torch.compile). ``evaluate`` runs
    on rank 0 alone while the other ranks wait at their next collective: it must not run collectives, which they would
    never join."""
    step: int
    epoch: float
    last: bool
    model: torch.nn.Module | None = None


@dataclass(frozen=True)
class EvalSchedule:
    """When the trainer calls a job's ``evaluate``: after every ``steps`` steps, or at the end of every
    ``epochs``-th epoch (``steps`` wins when both are set), and always after the run's last step; never when
    both are 0. Jobs hand their option to :meth:`~milan_lab.engine.trainer.Trainer.fit` (``eval_every``); :meth:`parse` reads it."""
    steps: int = 0
    epochs: int = 0

    @classmethod
    def parse(cls, value, option: str = "eval_every") -> "EvalSchedule":
        """An option's value: a number of steps (0: never) or ``"epoch"`` (each epoch's end); a schedule as it is."""
        if isinstance(value, cls):
            return value
        if value == "epoch":
            return cls(epochs=1)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return cls(steps=value)
        raise ConfigError(f"bad value for {option!r}: expected a number of steps (0: never) or 'epoch', got {value!r}")

    def due(self, done: int, steps_per_epoch: int, last: bool) -> bool:
        """Whether to evaluate once ``done`` steps are taken (``last``: the run stops here)."""
        if not (self.steps or self.epochs):
            return False
        if last:
            return True
        if self.steps:
            return done % self.steps == 0
        return done % steps_per_epoch == 0 and (done // steps_per_epoch) % self.epochs == 0


class RunResult(dict):
    """What a job returns: its summary (this dict, as written to ``metrics.json``; printable as JSON) with the
    run's logged rows (``history``) and its trained model, in memory (``model``), beside it; neither is an item,
    so ``json.dumps(result)`` and ``dict(result)`` give the summary alone."""

    def __init__(self, summary: dict, history: list[dict], model: torch.nn.Module | None):
        super().__init__(summary)
        self.history, self.model = history, model

    @property
    def summary(self) -> dict:
        return dict(self)

    def __reduce__(self):  # pickled (submitit sends a task's result back) as the summary alone: no model on the wire
        return dict, (dict(self),)
