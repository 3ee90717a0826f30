"""The one training loop every job uses (pretraining, fine-tuning, linear probing, the teacher).

Its contract with a job (what the job hands :meth:`Trainer.fit` and gets back: ``loss_fn(net, batch, ctx)``,
``evaluate(ctx)`` on an ``eval_every`` schedule, ``after_step(step)``; a :class:`RunResult` from
:meth:`Trainer.finish`) is written down, with its types, in :mod:`milan_lab.engine.contract`; compiling the
model, and falling back to eager when it cannot be compiled, in :mod:`milan_lab.engine.compile`.

The trainer owns the rest, as timm's train.py and nanoGPT's train.py do in one place:

* device and DDP set-up and teardown (torchrun: NCCL on GPU, gloo on CPU);
* precision: bf16 autocast on CUDA, fp16 autocast with a GradScaler, fp32 on CPU;
* gradient accumulation (DDP's no_sync on all but the last micro-step) and clipping;
* seeding: identical initial weights on every rank, then one stream per rank of torch's, numpy's and
  Python's global generators (drop path, Mixup, augmentation), seeded from (seed, rank);
* exact resume from the newest atomic checkpoint (every rank's RNG state is saved), after
  checking that the checkpoint fits the model;
* metrics: CSV + TensorBoard on rank 0, a progress bar; the loss stays on the device and is
  read every ``log_every`` steps (no host sync per step on GPU), and a NaN/inf loss stops the
  run before it can reach a checkpoint.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from timm.data.loader import PrefetchLoader
from tqdm import tqdm

from milan_lab.config import TrainerConfig
from milan_lab.engine import distributed as dist_utils
from milan_lab.engine.common import (
    EpochBatchSampler,
    MetricsLog,
    autocast,
    make_loader,
    precision_for,
    resolve_workers,
    user_errors_from_workers,
    write_json,
)
from milan_lab.engine.compile import compiled, eager_warning
from milan_lab.engine.contract import Batches, EvalContext, EvalSchedule, RunResult, StepContext
from milan_lab.engine.loggers import check_loggers, finish_loggers, open_loggers
from milan_lab.engine.rng import rng_state, seed_everything, set_rng_state, step_generator
from milan_lab.errors import ConfigError, DataError, TrainingDiverged
from milan_lab.factory.models import check_resumable, task_of_model
from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from milan_lab.io.targets import check_writable
from milan_lab.io.weights import remove_stale_temporaries


class Trainer:
    def __init__(self, cfg: TrainerConfig, name: str, arch=None):
        """``cfg``: the job's config (a :class:`TrainerConfig`), validated here, before any work.
        ``arch``: the model's config, which a resumed checkpoint must match (named if not)."""
        cfg.validate()
        check_writable(cfg.output_dir, "output_dir", folder=True)  # before the model, data and teacher are built
        check_loggers(cfg.logger)  # a missing W&B / MLflow package is named before any work
        self.loggers: list = []  # rank 0's TensorBoard / W&B / MLflow loggers, opened by fit, closed by finish
        self.history: list[dict] = []
        self.cfg, self.name, self.arch = cfg, name, arch
        self.task: str | None = None  # the model's task ("pretrain", "finetune", "linear"), set by fit
        self.device = dist_utils.resolve_device(cfg.device)
        self.rank, self.world = dist_utils.init_distributed(self.device)
        self.main = dist_utils.is_main(self.rank)
        self.out = Path(cfg.output_dir)
        self.amp_dtype, use_scaler = precision_for(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.checkpoint_path: Path | None = None
        self.elapsed = 0.0  # seconds of training so far, this run and the runs it resumed
        self.eval_elapsed = 0.0  # of which spent in ``evaluate`` (rows report ``train_s`` without it)
        torch.manual_seed(cfg.seed)  # the job builds its model next: identical initial weights on every rank

    def autocast(self):
        return autocast(self.device, self.amp_dtype)

    def dataset_batches(self, dataset, num_workers: int = -1) -> Batches:
        """Global batches of ``dataset`` in a (seed, epoch) order, this rank's slice of each,
        loaded by ``num_workers`` processes (-1: 0 on CPU, 8 on GPU)."""
        workers = resolve_workers(num_workers, self.device)

        def batches(epoch: int, start: int):
            dataset.set_epoch(epoch)
            sampler = EpochBatchSampler(len(dataset), self.cfg.batch_size, self.cfg.seed, epoch, self.rank,
                                        self.world, start_batch=start)
            loader = make_loader(dataset, sampler, workers, self.device)
            # uint8 images (4x fewer bytes to move) are normalised on the device, the next batch
            # copied while this one trains (a side stream on CUDA)
            if getattr(dataset, "uint8_images", False):
                loader = PrefetchLoader(loader, device=self.device)
            return user_errors_from_workers(loader)  # a worker's BadImage reads as one line, as without workers
        return batches

    # -----------------------------------------------------------------------------------------
    def fit(self, model, optimizer, scheduler, batches: Batches, steps_per_epoch: int, loss_fn,
            evaluate=None, after_step=None, state_dict=None, load_state_dict=None, *, epochs: int,
            eval_every="epoch") -> list[dict]:
        """Train ``model`` in place to ``epochs * steps_per_epoch`` steps (or ``max_steps``), resuming from
        ``output_dir`` when it holds a checkpoint; returns the history of logged rows (also ``self.history``).

        ``loss_fn(net, batch, ctx)`` returns the loss of one (micro-)batch (``ctx``: a :class:`StepContext`);
        ``evaluate(ctx)`` (``ctx``: an :class:`EvalContext`) runs on rank 0 when ``eval_every`` (an
        :class:`EvalSchedule` or the value :meth:`EvalSchedule.parse` reads) says so and returns a row to log, or
        None; it runs on rank 0 only, on the unwrapped ``model`` (``ctx.model``, not the DDP or compiled wrapper),
        and must not run collectives (all_reduce, barrier, a DDP forward), which would hang the other ranks;
        ``after_step(step)`` runs after each step (``step`` from 0). ``scheduler.step_update(step)`` sets the
        lr before each step; ``state_dict()`` / ``load_state_dict(sd)`` default to the model's own (MILAN leaves
        its frozen teacher out)."""
        cfg, device = self.cfg, self.device
        schedule = EvalSchedule.parse(eval_every)
        if steps_per_epoch <= 0:
            raise DataError(f"the training data holds fewer images than one batch of {cfg.batch_size}")
        state_dict = state_dict or model.state_dict
        load_state_dict = load_state_dict or model.load_state_dict
        model.to(device).train()
        self.task = task_of_model(model)  # stored in every checkpoint: what factory.load_model rebuilds
        total = steps_per_epoch * epochs
        step, history, window = self._resume(model, optimizer, load_state_dict)
        t_start = time.time() - self.elapsed  # wall-clock of the run, carried over a resume
        if self.main and not self.loggers:
            self.loggers = open_loggers(cfg.logger, self.out, dataclasses.asdict(cfg), step)
        log = MetricsLog(self.out / "metrics.csv", enabled=self.main, purge_after=step, sinks=self.loggers)
        net = model
        if self.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        eager = net
        if cfg.compile:
            net = compiled(net, device)
        compile_pending = net is not eager  # compiled, and its first step (where inductor compiles) not taken yet
        last = min(total, cfg.max_steps or total)
        bar = tqdm(total=last, initial=step, disable=not (self.main and cfg.progress), desc=self.name,
                   dynamic_ncols=True, mininterval=2.0)
        loss_sum = torch.tensor(window[0], device=device)  # since the last logged row, on the device
        bad_step = torch.full((), -1, device=device, dtype=torch.long)  # first step with a non-finite loss
        steps_since, images_since, t_last = window[1], 0, time.time()
        while step < last:
            epoch = step // steps_per_epoch
            for batch in batches(epoch, step % steps_per_epoch):
                scheduler.step_update(step)
                if compile_pending:
                    loss, net = self._first_compiled_step(net, eager, model, optimizer, batch, loss_fn, step, epoch)
                    compile_pending = False
                else:
                    loss = self._step(net, model, optimizer, batch, loss_fn, step, epoch)
                bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), step + 1, bad_step)
                if device.type == "cpu":  # no sync to avoid on CPU: stop at the step itself
                    self._check_finite(bad_step)
                if after_step is not None:
                    after_step(step)
                loss_sum += loss
                step, steps_since = step + 1, steps_since + 1
                images_since += cfg.batch_size
                bar.update(1)
                is_last = step >= last
                if step % cfg.log_every == 0 or is_last:
                    self._check_finite(bad_step)
                    now = time.time()
                    row = {"step": step, "epoch": step / steps_per_epoch, "elapsed_s": now - t_start,
                           "train_s": now - t_start - self.eval_elapsed,
                           "loss": dist_utils.all_reduce_mean(loss_sum.item() / steps_since, device),
                           "lr": max(g["lr"] for g in optimizer.param_groups),
                           "img_per_s": images_since / max(now - t_last, 1e-9)}
                    loss_sum.zero_()
                    steps_since, images_since, t_last = 0, 0, now
                    history.append(row)
                    log.log(row)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", img_s=f"{row['img_per_s']:.0f}")
                if evaluate is not None and self.main and schedule.due(step, steps_per_epoch, is_last):
                    t_eval = time.time()
                    row = evaluate(EvalContext(step, step / steps_per_epoch, is_last, model=model))
                    if row:
                        now = time.time()
                        self.eval_elapsed += now - t_eval
                        t_last += now - t_eval  # images/s counts training time only
                        row = {"step": step, "epoch": step / steps_per_epoch, "elapsed_s": now - t_start,
                               "train_s": now - t_start - self.eval_elapsed, **row}
                        history.append(row)
                        log.log(row)
                if step % cfg.checkpoint_every == 0 or is_last:
                    self._check_finite(bad_step)  # a diverged run never overwrites a good checkpoint
                    self.elapsed = time.time() - t_start
                    self._save(step, state_dict(), optimizer, history, (loss_sum.item(), steps_since))
                if is_last:
                    break
        bar.close()
        log.close()
        self.history = history
        return history

    def finish(self, summary: dict, model: torch.nn.Module | None = None, **extra) -> RunResult:
        """Write ``metrics.json`` (``summary`` and ``extra``, rank 0), wait for every rank, tear DDP down; returns
        ``summary`` as a :class:`RunResult` carrying the history of :meth:`fit` and ``model`` (the trained one)."""
        if self.main:
            config = dataclasses.asdict(self.cfg)
            write_json(self.out / "metrics.json", {"summary": summary, **extra, "config": config})
            # the final numbers and the run's files to each logger (TensorBoard's HParams tab, W&B, MLflow)
            finish_loggers(self.loggers, self.out, config, summary, self.history)
            self.loggers = []
        dist_utils.barrier()
        dist_utils.cleanup()
        return RunResult(summary, self.history, model)

    # -----------------------------------------------------------------------------------------
    def context(self, step: int, epoch: int) -> StepContext:
        """The :class:`StepContext` of step ``step`` (of epoch ``epoch``) on this rank, with a fresh generator."""
        return StepContext(step, epoch, self.rank, self.world,
                           step_generator(self.cfg.seed, step, self.rank, self.device))

    def _step(self, net, model, optimizer, batch, loss_fn, step: int, epoch: int) -> torch.Tensor:
        """One optimiser step (step ``step`` of epoch ``epoch``) over ``accum_steps`` micro-batches; returns the
        (detached) loss."""
        cfg = self.cfg
        micro = split_batch(batch, cfg.accum_steps)
        ctx = self.context(step, epoch)  # one per step: its micro-batches draw from the one generator, in turn
        total = torch.zeros((), device=self.device)
        for i, chunk in enumerate(micro):
            with dist_utils.no_sync(net, i < len(micro) - 1), self.autocast():
                loss = loss_fn(net, chunk, ctx) / len(micro)
            self.scaler.scale(loss).backward()
            total += loss.detach().float()
        if cfg.clip_grad:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return total

    def _first_compiled_step(self, net, eager, model, optimizer, batch, loss_fn, step: int,
                             epoch: int) -> tuple[torch.Tensor, torch.nn.Module]:
        """The first step of a compiled model, in which dynamo traces it and inductor compiles the forward
        and backward graphs. If that fails, for any reason (no C or C++ compiler, an unsupported op, a
        compiler bug), one warning, and the same step is taken eagerly from the same RNG state with the
        gradients cleared: the run goes on eagerly, as a run without compile=true would have. An error of
        the step itself (not of compiling it) comes back from the eager step with its own traceback.
        Under DDP (world size > 1) the step is not retaken: the failure may have come half-way through the
        gradients' all-reduce, and another rank may have compiled fine, so the ranks would no longer agree;
        a ConfigError says to run with compile=false instead.
        Returns (loss, the module the run goes on with)."""
        state = rng_state()
        try:
            return self._step(net, model, optimizer, batch, loss_fn, step, epoch), net
        except Exception as e:  # noqa: BLE001 -- see above: the eager step below raises any error of the step itself
            if self.world > 1:
                first = (str(e).strip().splitlines() or [""])[0][:200]
                raise ConfigError(f"compile=true: compiling the model failed on rank {self.rank} of {self.world} "
                                  f"({type(e).__name__}: {first}); under DDP the step cannot be retaken eagerly, "
                                  "run with compile=false") from e
            eager_warning("compiling the model failed", e)
        optimizer.zero_grad(set_to_none=True)
        set_rng_state(state)
        return self._step(eager, model, optimizer, batch, loss_fn, step, epoch), eager

    def _check_finite(self, bad_step: torch.Tensor) -> None:
        bad = int(bad_step.item())
        if bad >= 0:
            good = f"the last good checkpoint is {self.checkpoint_path}" if self.checkpoint_path else \
                "no checkpoint was written before it"
            raise TrainingDiverged(f"the loss became NaN or infinite at step {bad}; {good}. Try a lower lr "
                                   f"(base_lr / lr), clip_grad=1.0, or a longer warm-up")

    def _resume(self, model, optimizer, load_state_dict) -> tuple[int, list, tuple]:
        folder = self.out / "checkpoints"
        if self.main:
            remove_stale_temporaries(folder)  # partial writes of a killed run
        ckpt = latest_checkpoint(folder) if self.cfg.resume else None
        if ckpt is None:
            seed_everything(self.cfg.seed + self.rank)  # per-rank streams for drop path, Mixup, augmentation
            return 0, [], (0.0, 0)
        state = load_checkpoint(ckpt)
        check_resumable(model, state["model"], ckpt, self.out, state.get("config"), self.arch)
        load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        set_rng_state(rngs[self.rank] if self.rank < len(rngs) else rngs[0])
        self.checkpoint_path = ckpt
        self.elapsed = float(state.get("elapsed_s", 0.0))
        self.eval_elapsed = float(state.get("eval_s", 0.0))
        return state["step"], state["history"], tuple(state.get("loss_window", (0.0, 0)))

    def _save(self, step: int, model_state: dict, optimizer, history, loss_window) -> None:
        """Every rank's RNG state is gathered so each resumes its own stream; rank 0 writes."""
        states = [rng_state()]
        if self.world > 1:
            gathered = [None] * self.world
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        if self.main:
            self.checkpoint_path = save_checkpoint(self.out / "checkpoints", step, {
                "model": model_state, "optimizer": optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "step": step, "history": history, "rng": states, "config": dataclasses.asdict(self.cfg),
                "loss_window": list(loss_window),  # the running mean of the next logged row: exact resume
                "elapsed_s": self.elapsed, "eval_s": self.eval_elapsed, **({"task": self.task} if self.task else {})},
                keep=self.cfg.keep_checkpoints)
        dist_utils.barrier()


def split_batch(batch, parts: int) -> list:
    """``parts`` micro-batches of a batch (a tensor, or a tuple/list of tensors and lists)."""
    if parts == 1:
        return [batch]
    if isinstance(batch, torch.Tensor):
        return list(batch.chunk(parts))
    columns = [split_batch(col, parts) if isinstance(col, torch.Tensor) else
               [col[i * len(col) // parts:(i + 1) * len(col) // parts] for i in range(parts)] for col in batch]
    return [type(batch)(col[i] for col in columns) if isinstance(batch, tuple) else [col[i] for col in columns]
            for i in range(parts)]
