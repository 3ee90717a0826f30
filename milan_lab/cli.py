"""``milan-lab``: thin subcommands over milan_lab's functions.

    milan-lab info PRESET [--json]
    milan-lab pretrain | finetune | linear-probe [--preset P] [--config YAML] [key=value ...]
    milan-lab submit --nodes N --gpus-per-node G [--partition P --time 72:00:00 ...] pretrain|finetune|linear-probe [key=value ...]
    milan-lab knn CHECKPOINT
    milan-lab compare RUN_A RUN_B [RUN ...] [--out DIR] | embed CHECKPOINT [--n 512] [--method pca|tsne] [--out FILE.png]
    milan-lab teacher train [key=value ...] | teacher eval [--teacher NAME] [--json]
    milan-lab bench [PRESET] [--json]
    milan-lab app [--host 127.0.0.1] [--port 7860]
    milan-lab list-models | predict MODEL IMAGE... | test MODEL --data DIR | export CKPT --timm OUT
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from milan_lab import config as C
from milan_lab.errors import DataWarning, DownloadError, MilanLabError
from milan_lab.io.targets import check_writable

JOB_COMMANDS = {"pretrain": "pretrain", "finetune": "finetune", "linear-probe": "linear"}


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``prog: error: ...``, exit 2), as every other user
    error of milan-lab is; ``--help`` still shows the usage. The benchmark scripts use it too."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(low: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(1, text)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a seed)."""
    return _int_at_least(0, text)


def preset_name(text: str) -> str:
    """argparse type: the name of a preset in milan_lab/presets."""
    if text not in C.PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {text!r}; known: {', '.join(C.PRESETS)}")
    return text


def device_name(text: str) -> str:
    """argparse type: a device this machine has (``config.check_device``: cuda without a GPU is refused)."""
    try:
        C.check_device(text)
    except MilanLabError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def output_file(text: str) -> str:
    """argparse type: a file path that can be written (``io.targets.check_writable``), checked before any work."""
    return _writable(text, folder=False)


def output_folder(text: str) -> str:
    """argparse type: a folder that exists or can be created, and takes new files."""
    return _writable(text, folder=True)


def _writable(text: str, folder: bool) -> str:
    try:
        check_writable(text, folder=folder)
    except MilanLabError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _options_epilog(job: str, preset: str | None = None) -> str:
    """Every option of ``job`` with the value a run gets from ``preset`` (the job's default preset if None)."""
    preset = preset or C.JOBS[job].preset
    rows = C.describe(C.JOBS[job], preset)
    width = max(len(k) for k, _, _ in rows)
    lines = [f"options (key=value; model.* keys may drop the prefix unless a job option has the same name), "
             f"with their defaults at --preset {preset}:"]
    lines += [f"  {k:<{width}}  {t:<12} default: {d!r}" for k, t, d in rows]
    lines.append(f"presets: {', '.join(C.PRESETS)}")
    return "\n".join(lines)


class _SubcommandParser(OneLineParser):
    """A subcommand's parser. A job's (``job`` set) ends its help with every option and its default at
    ``help_preset``, worked out when the help is shown: a job's ``--help`` is a flag read with the other
    arguments (``main`` prints the help), so that ``--preset P`` counts wherever it stands."""
    job: str | None = None
    help_preset: str | None = None

    def format_help(self) -> str:
        if self.job:
            self.epilog = _options_epilog(self.job, self.help_preset)
        return super().format_help()


def _record_option(parser) -> None:
    parser.add_argument("--record", metavar="FILE", type=output_file,
                        help="also write the result with its provenance (command, commit, machine, matmul peak, seeds) "
                             "to this JSON file (checked before the measurement)")


def _context_options(parser) -> None:
    """The options of a probe that prints its score beside a random-init encoder's and chance."""
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the random-init encoder of the same architecture, probed the same way (about "
                             "doubles the time)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when stderr "
                                                              "is not a terminal)")


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _save_record(args, kind: str, result: dict, seconds: float, seeds=(0,)) -> None:
    if getattr(args, "record", None):
        from milan_lab.tools.records import write_record
        command = " ".join(["milan-lab", *args.argv])
        print(f"record: {write_record(args.record, kind, result, seeds, seconds, command=command)}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="milan-lab", description="MILAN research workbench")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)

    s = sub.add_parser("info", help="parameter counts and GFLOPs of a preset")
    s.add_argument("preset", choices=list(C.PRESETS))
    s.add_argument("--json", action="store_true")
    _record_option(s)

    for name, job in JOB_COMMANDS.items():
        s = sub.add_parser(name, help=f"run {name}", add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter)
        s.job = job
        s.add_argument("-h", "--help", action="store_true", dest="job_help",
                       help="show this help, with the options' defaults at --preset, and exit")
        s.set_defaults(job_parser=s)
        s.add_argument("--preset", default=C.JOBS[job].preset, choices=list(C.PRESETS))
        s.add_argument("--config", help="YAML file of options (applied before key=value overrides)")
        s.add_argument("overrides", nargs="*", metavar="key=value")

    _submit_parser(sub)

    s = sub.add_parser("knn", help="kNN accuracy (k=20, cosine) of an encoder on the offline data")
    s.add_argument("checkpoint", help="pretraining checkpoint or output_dir; 'random' for random init")
    s.add_argument("--preset", default=C.PretrainConfig.preset, choices=list(C.PRESETS))
    s.add_argument("--train-size", type=positive_int, default=2048)
    s.add_argument("--val-size", type=positive_int, default=1024)
    _context_options(s)
    s.add_argument("--json", action="store_true")
    _record_option(s)

    s = sub.add_parser("seg-probe", help="linear dense (segmentation) probe of a frozen encoder: mIoU")
    s.add_argument("checkpoint", help="pretraining checkpoint or output_dir; 'random' for random init")
    s.add_argument("--preset", default=C.PretrainConfig.preset, choices=list(C.PRESETS))
    s.add_argument("--data", default="offline", help="'offline' (scenes with label maps) or an ADE20K-layout folder")
    s.add_argument("--train-size", type=positive_int, default=1024)
    s.add_argument("--val-size", type=positive_int, default=512)
    s.add_argument("--steps", type=positive_int, default=300)
    s.add_argument("--seed", type=nonnegative_int, default=0)
    s.add_argument("--no-save", action="store_true", help="do not save the probe")
    s.add_argument("--out", metavar="FILE", default=None, type=output_file,
                   help="where the probe goes (default: beside the checkpoint; outputs/probes/NAME/ for a shipped or zoo "
                        "model, whose files are never written; the app looks there)")
    _context_options(s)
    s.add_argument("--json", action="store_true")
    _record_option(s)

    s = sub.add_parser("attention", help="where the class token looks: attention on the main object, agreement "
                                         "with the teacher, against random encoders")
    s.add_argument("checkpoint", help="pretraining checkpoint or output_dir (its own teacher is the reference)")
    s.add_argument("-n", type=positive_int, default=256, help="offline validation scenes")
    s.add_argument("--random-inits", type=positive_int, default=3)
    s.add_argument("--variant", default="dense", choices=["dense", "sparse"], help="offline scene kind")
    s.add_argument("--seed", type=nonnegative_int, default=0)
    s.add_argument("--json", action="store_true")
    _record_option(s)

    _instrument_parsers(sub)

    t = sub.add_parser("teacher", help="train or evaluate the small CLIP teacher")
    tsub = t.add_subparsers(dest="teacher_command", required=True)
    s = tsub.add_parser("train", help="train a small CLIP on offline captions (reproduces the shipped one)")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s = tsub.add_parser("eval", help="zero-shot accuracy and attention-on-objects of a teacher")
    s.add_argument("--teacher", default=None, help="a shipped teacher (offline-shape, offline-noshape), a folder, an "
                   "open_clip name, or nothing for the shipped shape-aware teacher")
    s.add_argument("--pretrained", default=None)
    s.add_argument("-n", type=positive_int, default=512)
    s.add_argument("--json", action="store_true")
    _record_option(s)

    s = sub.add_parser("bench", help="time the pretraining step: img/s, split by stage, MFU")
    s.add_argument("preset", nargs="?", default=C.PretrainConfig.preset, choices=list(C.PRESETS))
    s.add_argument("--batch-size", type=positive_int, default=None)
    s.add_argument("--steps", type=positive_int, default=10)
    s.add_argument("--device", type=device_name, default="auto")
    s.add_argument("--json", action="store_true")
    _record_option(s)

    s = sub.add_parser("app", help="launch the Gradio explorer (127.0.0.1 by default)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--teacher", default=None, help="a shipped teacher (offline-shape, offline-noshape), a folder or an "
                   "open_clip name (default: the shipped shape-aware teacher)")
    s.add_argument("--teacher-pretrained", default=None)
    s.add_argument("--checkpoint", default=None, help="MILAN checkpoint (default: the shipped small model)")

    sub.add_parser("list-models", help="models known to get_model")
    s = sub.add_parser("predict", help="top-5 classes for images")
    s.add_argument("model")
    s.add_argument("images", nargs="+")
    s.add_argument("--pretrained", default=None, help="checkpoint path (default: the zoo's)")
    s = sub.add_parser("test", help="top-1/top-5 on an ImageNet-style folder")
    s.add_argument("model")
    s.add_argument("--data", required=True)
    s.add_argument("--pretrained", default=None)
    s.add_argument("--batch-size", type=positive_int, default=64)
    s = sub.add_parser("export", help="export an encoder to timm's ViT layout")
    s.add_argument("checkpoint")
    s.add_argument("--timm", required=True, metavar="OUT", type=output_file,
                   help="output file (.safetensors, or .pth) for timm.create_model(..., pretrained_cfg_overlay=dict(file=OUT))")
    return p


# how each command takes the local file that replaces a download (DownloadError.option, "pretrained")
LOCAL_FILE_OPTIONS = {"app": "--teacher-pretrained PATH", "teacher": "--pretrained PATH", "predict": "--pretrained PATH",
                      "test": "--pretrained PATH", "pretrain": "teacher_pretrained=PATH"}
# commands that take a checkpoint and build its teacher from the checkpoint's own config: no option names a file
CHECKPOINT_TEACHER_WORDS = dict.fromkeys(
    ("attention", "knn", "seg-probe"),
    "the teacher comes from the checkpoint's config: pass a checkpoint whose teacher is local, "
    "or point that config's teacher_pretrained to a local file")


def _in_cli_words(error: MilanLabError, command: str) -> str:
    """The error's message, with an API argument it names spelled as this command's option."""
    if isinstance(error, DownloadError) and error.option == "pretrained" and command in LOCAL_FILE_OPTIONS:
        return error.naming(LOCAL_FILE_OPTIONS[command])
    if isinstance(error, DownloadError) and error.option == "pretrained" and command in CHECKPOINT_TEACHER_WORDS:
        return f"{error.problem}; {CHECKPOINT_TEACHER_WORDS[command]}"
    return str(error)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if getattr(args, "job_help", False):  # a job's --help: its options at the --preset given
        args.job_parser.help_preset = args.preset
        args.job_parser.print_help()
        args.job_parser.exit()  # as argparse's own --help: SystemExit(0)
    try:
        return _dispatch(args) or 0
    except MilanLabError as e:  # bad input: one clear line; anything else is a bug and keeps its traceback
        print(f"milan-lab {args.command}: error: {_in_cli_words(e, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"milan-lab {args.command}: interrupted (a training run resumes from its last checkpoint)", file=sys.stderr)
        return 130


def _dispatch(args) -> int | None:
    # Each command imports what it runs here, not at the top: `milan-lab --help` and a refused option
    # answer at once instead of after importing torch, timm, open_clip and gradio.
    cmd = args.command
    if cmd == "info":
        from milan_lab.tools.info import format_info, model_info
        t = time.perf_counter()
        info = model_info(args.preset)
        print(json.dumps(info, indent=1) if args.json else format_info(info))
        _save_record(args, "info", info, time.perf_counter() - t, seeds=())  # the counts depend on no seed
    elif cmd in JOB_COMMANDS:
        job = JOB_COMMANDS[cmd]
        cfg = C.get_config(job, args.preset, args.overrides, args.config)
        if job == "pretrain":
            from milan_lab.jobs.pretrain import pretrain as run
        elif job == "finetune":
            from milan_lab.jobs.finetune import finetune as run
        else:
            from milan_lab.jobs.linear import linear_probe as run
        print(json.dumps(run(cfg), indent=1))
    elif cmd == "submit":
        return _submit(args)
    elif cmd == "knn":
        from milan_lab.evaluation.probes import format_knn, knn_eval
        t = time.perf_counter()
        result = knn_eval(args.checkpoint, args.preset, args.train_size, args.val_size, baseline=not args.no_baseline,
                          progress=_progress(args))
        print(json.dumps(result, indent=1) if args.json else format_knn(result))
        _save_record(args, "knn", result, time.perf_counter() - t)
    elif cmd == "seg-probe":
        from milan_lab.evaluation.probes import format_seg_probe, seg_probe_eval
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            r = seg_probe_eval(args.checkpoint, args.preset, args.data, args.train_size, args.val_size, args.steps,
                               args.seed, save=not args.no_save, baseline=not args.no_baseline, progress=_progress(args),
                               out=args.out)
        for w in caught:  # ours as one line; any other warning as Python shows it
            if issubclass(w.category, DataWarning):
                print(f"milan-lab seg-probe: warning: {w.message}", file=sys.stderr)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        print(json.dumps(r, indent=1) if args.json else format_seg_probe(r))
        _save_record(args, "seg-probe", r, time.perf_counter() - t, seeds=(args.seed,))
    elif cmd == "attention":
        from milan_lab.evaluation.attention import attention_eval, format_attention
        t = time.perf_counter()
        r = attention_eval(args.checkpoint, args.n, args.random_inits, args.seed, args.variant)
        print(json.dumps(r, indent=1) if args.json else format_attention(r))
        _save_record(args, "attention", r, time.perf_counter() - t, seeds=(args.seed,))  # the floor's seeds are in r
    elif cmd in ("compare", "embed"):
        _instrument(args)
    elif cmd == "teacher":
        _teacher(args)
    elif cmd == "bench":
        from milan_lab.tools.bench import bench, format_bench
        t = time.perf_counter()
        result = bench(args.preset, args.batch_size, args.steps, args.device)
        print(json.dumps(result, indent=1) if args.json else format_bench(result))
        _save_record(args, "bench", result, time.perf_counter() - t, seeds=())
    elif cmd == "app":
        from milan_lab.app import launch
        launch(host=args.host, port=args.port, teacher=args.teacher, teacher_pretrained=args.teacher_pretrained,
               checkpoint=args.checkpoint)
    elif cmd == "list-models":
        from milan_lab.zoo import describe_model, format_model, list_models
        print("\n".join(format_model(describe_model(name)) for name in list_models()))
    elif cmd == "predict":
        return _predict(args)
    elif cmd == "test":
        from milan_lab.zoo import evaluate_folder, get_model
        model = get_model(args.model, pretrained=args.pretrained or True)
        result = evaluate_folder(model, args.data, args.batch_size)
        print(json.dumps(result, indent=1))
        for path, reason in result["skipped_files"].items():
            print(f"milan-lab test: skipped {path}: {reason}", file=sys.stderr)
        return 1 if result["skipped"] else 0
    elif cmd == "export":
        from milan_lab.factory.models import export_timm
        print(export_timm(args.checkpoint, args.timm))
    return 0


def _instrument_parsers(sub) -> None:
    """``compare`` (runs side by side) and ``embed`` (an encoder's embedding of offline scenes in 2-D)."""
    s = sub.add_parser("compare", help="runs side by side: config differences, loss and kNN by images seen, final "
                                       "numbers (with a t-interval for seeds of one recipe); markdown, JSON and a figure")
    s.add_argument("runs", nargs="+", metavar="RUN", help="run folders (a job's output_dir), at least 2")
    s.add_argument("--out", metavar="DIR", type=output_folder, default=None,
                   help="folder for compare.md, compare.json and compare.png (default: outputs/compare/A-vs-B)")
    s = sub.add_parser("embed", help="class-token and mean-patch embeddings of offline scenes in 2-D, coloured by "
                                     "shape, beside a random-init encoder of the same architecture")
    s.add_argument("checkpoint", help="pretraining checkpoint or output_dir, 'shipped', a zoo model's name, or 'random'")
    s.add_argument("-n", "--n", type=positive_int, default=512, help="offline validation scenes (at least 20)")
    s.add_argument("--method", default="pca", choices=["pca", "tsne"], help="projection, fitted per panel")
    s.add_argument("--out", metavar="FILE.png", type=output_file, default=None,
                   help="the figure (default: outputs/embed/NAME_METHOD.png)")
    s.add_argument("--preset", default=C.PretrainConfig.preset, choices=list(C.PRESETS),
                   help="the architecture of 'random' and of files without a config")
    s.add_argument("--seed", type=nonnegative_int, default=0, help="t-SNE's seed")
    s.add_argument("--no-baseline", action="store_true", help="skip the random-init encoder's panels")


def _instrument(args) -> None:
    if args.command == "compare":
        from milan_lab.tools.compare import compare, format_compare
        result, paths = compare(args.runs, args.out)
        print(format_compare(result))
        print(f"written: {paths['md']}, {paths['json']}, {paths['png']}", file=sys.stderr)
    else:
        from milan_lab.tools.embed import embed_command, format_embed
        result, path = embed_command(args.checkpoint, args.n, args.method, args.out, args.preset, args.seed,
                                     baseline=not args.no_baseline)
        print(format_embed(result))
        print(f"figure: {path}")


def _submit_parser(sub) -> None:
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


def _job_args(args) -> argparse.Namespace:
    """The job's own options after its name (argparse cannot mix them with a positional before them)."""
    p = OneLineParser(prog=f"milan-lab submit {args.job}")
    p.add_argument("--preset", default=None, choices=list(C.PRESETS))
    p.add_argument("--config", help="YAML file of options (applied before key=value overrides)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    return p.parse_args(args.job_args)


def _submit(args) -> int:
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


def _predict(args) -> int:
    """Every readable image is classified; each unreadable one is named with its reason (exit 1)."""
    from milan_lab.errors import BadImage
    from milan_lab.zoo import get_model, inference_model, known_classes
    model = get_model(args.model, pretrained=args.pretrained or True)
    header = known_classes(model) if isinstance(getattr(model, "num_classes", None), int) else None  # a classifier
    failed = 0
    for path in args.images:
        try:
            result = inference_model(model, path, topk=5)
        except BadImage as e:
            failed += 1
            print(f"milan-lab predict: skipped {path}: {str(e).split(': ', 1)[-1]}", file=sys.stderr)
            continue
        if header:  # once, above the first answer: what the scores range over
            print(header)
            header = None
        print(path)
        for label, cls, score in zip(result["topk_labels"], result["topk_classes"], result["topk_scores"]):
            print(f"  {score:6.3f}  {label:4d}  {cls}")
    if failed:
        print(f"milan-lab predict: {failed} of {len(args.images)} images could not be read", file=sys.stderr)
    return 1 if failed else 0


def _teacher(args) -> None:
    if args.teacher_command == "train":
        from milan_lab.jobs.teacher import TeacherTrainConfig, train_teacher
        cfg = C.apply_overrides(TeacherTrainConfig(), args.overrides)
        folder = train_teacher(cfg)
        print(f"teacher exported to {folder} (load with load_teacher({str(folder)!r}))")
    else:
        from milan_lab.evaluation.teacher import evaluate_teacher
        from milan_lab.factory.teachers import load_teacher
        t = time.perf_counter()
        result = evaluate_teacher(load_teacher(args.teacher, args.pretrained), n=args.n)
        if args.json:
            print(json.dumps(result, indent=1))
        else:
            for k, v in result["zero_shot"].items():
                print(f"zero-shot {k:<18} {100 * v:5.1f} %")
            print(f"attention on objects         {result['attention_on_objects']:.2f}x the objects' area share "
                  f"(median {result['attention_on_objects_median']:.2f}x, {result['n_images']} held-out images)")
        _save_record(args, "teacher-eval", result, time.perf_counter() - t)


if __name__ == "__main__":
    sys.exit(main())
