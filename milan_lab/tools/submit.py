"""``milan-lab submit``: a training job on a SLURM cluster through submitit, requeued on timeout or preemption.

As MAE's and the MILAN authors' ``submitit_pretrain.py``: one task per GPU joins the job's DDP group (rank,
world size and master address from submitit's view of the SLURM allocation:
``submitit.helpers.TorchDistributedEnvironment``, exported as torchrun's variables, so the trainer sets DDP
up exactly as under torchrun). SLURM signals the tasks (SIGUSR2) ``signal_delay_s`` before the time limit
or at a preemption; submitit then calls :meth:`TrainingTask.checkpoint`, whose answer is the same task, and
requeues the job, which resumes from the newest checkpoint in ``output_dir`` bit for bit (the trainer's
atomic checkpoints hold every rank's RNG). Steps since that checkpoint are taken again: ``checkpoint_every``
sets how many at most. submitit's logs (``JOBID_TASK_log.out`` / ``.err``) go to ``OUTPUT_DIR/submitit/``,
beside the run's own files.

``cluster="local"`` runs the same job with submitit's ``LocalExecutor`` (one node, the tasks as processes
here), which is how the requeue is tested without a cluster.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from milan_lab.errors import ConfigError
from milan_lab.io.targets import check_writable

JOBS = {"pretrain": "pretrain", "finetune": "finetune", "linear-probe": "linear"}  # command -> job config name


@dataclass
class ClusterOptions:
    """What ``sbatch`` is asked for (SLURM's own names in the comments)."""
    nodes: int = 1                  # --nodes
    gpus_per_node: int = 1          # --gpus-per-node; one task per GPU
    tasks_per_node: int | None = None  # --ntasks-per-node (default: gpus_per_node, at least 1)
    cpus_per_task: int | None = None  # --cpus-per-task (data loader workers + 1 is a good value)
    partition: str | None = None    # --partition
    account: str | None = None      # --account
    time: str = "72:00:00"          # --time: minutes, [days-]hours:minutes:seconds, ...
    mem: str | None = None          # --mem, e.g. 256G (per node)
    qos: str | None = None          # --qos
    constraint: str | None = None   # --constraint
    signal_delay_s: int = 120       # SIGUSR2 this long before the time limit: time to stop and requeue
    max_requeues: int = 20          # timeouts before submitit gives up (preemptions do not count)
    cluster: str = "slurm"          # "slurm" | "local" (submitit's LocalExecutor: one node, processes here)
    name: str = "milan-lab"         # --job-name

    @property
    def tasks(self) -> int:
        return self.tasks_per_node or max(self.gpus_per_node, 1)

    def validate(self) -> None:
        for key, low in (("nodes", 1), ("gpus_per_node", 0), ("tasks_per_node", 1), ("cpus_per_task", 1),
                         ("signal_delay_s", 0), ("max_requeues", 0)):
            value = getattr(self, key)
            if value is not None and value < low:
                raise ConfigError(f"bad value for --{key.replace('_', '-')}: must be at least {low}, got {value}")
        if self.cluster not in ("slurm", "local"):
            raise ConfigError(f"bad value for --cluster: {self.cluster!r}; expected 'slurm' or 'local'")
        if self.cluster == "local" and self.nodes > 1:
            raise ConfigError(f"--cluster local runs on this machine only: --nodes must be 1, got {self.nodes}")
        minutes = parse_time(self.time)
        if self.signal_delay_s >= 60 * minutes:
            raise ConfigError(f"--signal-delay {self.signal_delay_s} s is not shorter than --time {self.time}")


def parse_time(text: str) -> int:
    """SLURM's ``--time`` formats -> minutes (rounded up): ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(text).strip())
    if not m:
        raise ConfigError(f"bad value for --time: {text!r}; expected minutes, H:M:S or D-H:M:S (SLURM's formats)")
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    if days is not None:  # D-H[:M[:S]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # H:M:S
        seconds = a * 3600 + b * 60 + c
    else:  # M or M:S
        seconds = a * 60 + (b or 0)
    if seconds <= 0:
        raise ConfigError(f"bad value for --time: {text!r} is no time at all")
    return -(-seconds // 60)


class TrainingTask:
    """One task of a submitted job: joins the job's DDP group and runs (or resumes) the job. submitit calls
    :meth:`checkpoint` on SIGUSR2 (time limit near, or preemption) and requeues what it returns."""

    def __init__(self, job: str, cfg):
        self.job, self.cfg = job, cfg

    def __call__(self) -> dict:
        from submitit.helpers import TorchDistributedEnvironment
        env = TorchDistributedEnvironment()
        # torchrun's variables, read by engine/distributed.py; the GPU is picked by LOCAL_RANK there, so
        # CUDA_VISIBLE_DEVICES is left as SLURM set it
        env.export(set_cuda_visible_devices=False, overwrite=True)
        if self.job == "pretrain":
            from milan_lab.jobs.pretrain import pretrain as run
        elif self.job == "finetune":
            from milan_lab.jobs.finetune import finetune as run
        else:
            from milan_lab.jobs.linear import linear_probe as run
        return run(self.cfg)

    def checkpoint(self):
        """The task to requeue: the same job, resuming from the newest checkpoint in ``output_dir`` (the
        trainer writes one every ``checkpoint_every`` steps; the run goes on from there bit for bit)."""
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(TrainingTask(self.job, dataclasses.replace(self.cfg, resume=True)))


def executor_for(opts: ClusterOptions, folder: Path):
    """A submitit executor for ``opts`` writing its logs and pickles to ``folder``."""
    import submitit
    opts.validate()
    if opts.cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("no SLURM on this machine (sbatch not found): submit from a cluster's login node, use "
                          "--cluster local to run the job here through submitit, or torchrun (docs/cluster.md)")
    minutes = parse_time(opts.time)
    if opts.cluster == "local":
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=opts.max_requeues)
        executor.update_parameters(timeout_min=minutes, tasks_per_node=opts.tasks, gpus_per_node=opts.gpus_per_node,
                                   signal_delay_s=opts.signal_delay_s, nodes=1)
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=opts.max_requeues)
    slurm = {"slurm_partition": opts.partition, "slurm_account": opts.account, "slurm_mem": opts.mem,
             "slurm_qos": opts.qos, "slurm_constraint": opts.constraint, "slurm_signal_delay_s": opts.signal_delay_s}
    executor.update_parameters(name=opts.name, nodes=opts.nodes, tasks_per_node=opts.tasks,
                               gpus_per_node=opts.gpus_per_node, timeout_min=minutes, cpus_per_task=opts.cpus_per_task,
                               **{k: v for k, v in slurm.items() if v is not None})
    return executor


def submit(job: str, cfg, opts: ClusterOptions):
    """Submit ``job`` ("pretrain" | "finetune" | "linear") with its validated config; returns submitit's job.
    Refused before anything is submitted: options SLURM cannot run, a global batch the tasks cannot share."""
    if job not in JOBS.values():
        raise ConfigError(f"unknown job {job!r}; expected one of {list(JOBS)}")
    cfg.validate()
    opts.validate()
    world = opts.nodes * opts.tasks
    if cfg.batch_size % (world * cfg.accum_steps):
        raise ConfigError(f"batch_size {cfg.batch_size} is the global batch: it must be divisible by the "
                          f"{world} tasks x accum_steps {cfg.accum_steps}")
    if opts.gpus_per_node and cfg.device not in ("auto", "cuda"):
        raise ConfigError(f"device={cfg.device!r}: a job on GPUs takes device=auto (each task its own GPU)")
    cfg = dataclasses.replace(cfg, output_dir=os.path.abspath(cfg.output_dir))  # the nodes may start elsewhere
    check_writable(cfg.output_dir, "output_dir", folder=True)  # before submitting, not in the job's first minute
    executor = executor_for(opts, Path(cfg.output_dir) / "submitit")  # JOBID_TASK_log.out, .err, pickles
    return executor.submit(TrainingTask(job, cfg))
