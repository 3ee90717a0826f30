"""``milan-lab export CKPT --timm OUT``: an encoder in timm's ViT layout."""
from __future__ import annotations

from milan_lab.commands.common import output_file


def add_parsers(sub) -> None:
    s = sub.add_parser("export", help="export an encoder to timm's ViT layout")
    s.add_argument("checkpoint")
    s.add_argument("--timm", required=True, metavar="OUT", type=output_file,
                   help="output file (.safetensors, or .pth) for timm.create_model(..., pretrained_cfg_overlay=dict(file=OUT))")
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.factory.models import export_timm
    print(export_timm(args.checkpoint, args.timm))
