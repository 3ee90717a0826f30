"""``milan-lab embed CHECKPOINT [--n 512] [--method pca|tsne] [--out FILE.png]``: an encoder's class-token and
mean-patch embeddings of offline scenes in 2-D, beside a random-init encoder's."""
from __future__ import annotations

from milan_lab import config as C
from milan_lab.commands.common import nonnegative_int, output_file, positive_int


def add_parsers(sub) -> None:
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
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.tools.embed import embed_command, format_embed
    result, path = embed_command(args.checkpoint, args.n, args.method, args.out, args.preset, args.seed,
                                 baseline=not args.no_baseline)
    print(format_embed(result))
    print(f"figure: {path}")
