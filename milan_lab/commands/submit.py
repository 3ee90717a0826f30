"""``milan-lab submit --nodes N --gpus-per-node G [...] pretrain|finetune|linear-probe [key=value ...]``:
a training job on SLURM through submitit."""
from __future__ import annotations

import argparse
import json

from milan_lab import config as C
from milan_lab.commands.common import OneLineParser, positive_int
from milan_lab.commands.jobs import JOB_COMMANDS


def add_parsers(sub) -> None:
    s = sub.add_parser("submit", help="submit a training job to SLURM (submitit): DDP over the nodes, requeued on "
                                      "timeout or preemption, resumed from the last checkpoint",
                       description="Submit a training job to SLURM with submitit (docs/cluster.md). One task per GPU; "
                                   "SIGUSR2 before the time limit or at a preemption requeues the job, which resumes "
                                   "from the newest checkpoint in output_dir; submitit's logs go to OUTPUT_DIR/submitit.")
    s.add_argument("--nodes", type=positive_int, default=1)
    s.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per node, one task each (0: CPU tasks)")
    s.add_argument("--tasks-per-node", type=positive_int, default=None, help="default: --gpus-per-node (at least 1)")
    s.add_argument("--cpus-per-task", type=positive_int, default=None)
    s.add_argument("--partition", default=None)
    s.add_argument("--account", default=None)
    s.add_argument("--time", default="72:00:00", help="time limit per allocation, in SLURM's formats (72:00:00, 1-12, 90)")
    s.add_argument("--mem", default=None, help="memory per node, as sbatch takes it (e.g. 256G)")
    s.add_argument("--qos", default=None)
    s.add_argument("--constraint", default=None)
    s.add_argument("--signal-delay", type=int, default=120, help="seconds before the time limit that SLURM sends SIGUSR2")
    s.add_argument("--max-requeues", type=int, default=20, help="timeouts after which the job is not requeued again")
    s.add_argument("--cluster", default="slurm", choices=["slurm", "local"],
                   help="local: submitit's LocalExecutor, the tasks as processes on this machine (one node)")
    s.add_argument("--wait", action="store_true", help="wait for the job to end and print its summary")
    s.add_argument("job", choices=list(JOB_COMMANDS))
    s.add_argument("job_args", nargs=argparse.REMAINDER, metavar="[--preset P] [--config YAML] key=value ...",
                   help="the job's options, as `milan-lab JOB` takes them")
    s.set_defaults(run=run)


def _job_args(args) -> argparse.Namespace:
    """The job's own options after its name (argparse cannot mix them with a positional before them)."""
    p = OneLineParser(prog=f"milan-lab submit {args.job}")
    p.add_argument("--preset", default=None, choices=list(C.PRESETS))
    p.add_argument("--config", help="YAML file of options (applied before key=value overrides)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    return p.parse_args(args.job_args)


def run(args) -> int:
    """The job's config is built and checked here, before anything is submitted."""
    from milan_lab.tools.submit import ClusterOptions, submit
    job_args = _job_args(args)
    cfg = C.get_config(JOB_COMMANDS[args.job], job_args.preset, job_args.overrides, job_args.config)
    opts = ClusterOptions(nodes=args.nodes, gpus_per_node=args.gpus_per_node, tasks_per_node=args.tasks_per_node,
                          cpus_per_task=args.cpus_per_task, partition=args.partition, account=args.account,
                          time=args.time, mem=args.mem, qos=args.qos, constraint=args.constraint,
                          signal_delay_s=args.signal_delay, max_requeues=args.max_requeues, cluster=args.cluster)
    job = submit(JOB_COMMANDS[args.job], cfg, opts)
    print(f"submitted job {job.job_id}: {opts.nodes} node(s) x {opts.tasks} task(s); logs in {job.paths.folder}")
    if args.wait:
        print(json.dumps(job.results()[0], indent=1))  # rank 0's summary
    return 0
