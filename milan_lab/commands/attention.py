"""``milan-lab attention CHECKPOINT``: where the class token looks (object ratio, share of the attention on the main
object and the map's AUROC against it, agreement with the teacher), against random encoders and a pixel-saliency map."""
from __future__ import annotations

import json
import time

from milan_lab.commands.common import CHECKPOINT_TEACHER, nonnegative_int, positive_int, record_option, save_record
from milan_lab.config import SCENE_KINDS

# the teacher comes from the checkpoint (DownloadError.option "pretrained" gets these words; cli reads it)
CHECKPOINT_TEACHER_WORDS = {"attention": CHECKPOINT_TEACHER}


def add_parsers(sub) -> None:
    s = sub.add_parser("attention", help="where the class token looks: attention on the main object (ratio, mass, "
                                         "AUROC), agreement with the teacher, against random encoders and pixel saliency")
    s.add_argument("checkpoint", help="pretraining checkpoint or output_dir (its own teacher is the reference)")
    s.add_argument("-n", type=positive_int, default=256, help="offline validation scenes")
    s.add_argument("--random-inits", type=positive_int, default=3)
    s.add_argument("--variant", default="dense", choices=SCENE_KINDS, help="offline scene kind")
    s.add_argument("--seed", type=nonnegative_int, default=0)
    s.add_argument("--json", action="store_true")
    record_option(s)
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.evaluation.probes import attention_eval, format_attention
    t = time.perf_counter()
    r = attention_eval(args.checkpoint, args.n, args.random_inits, args.seed, args.variant)
    print(json.dumps(r, indent=1) if args.json else format_attention(r))
    save_record(args, "attention", r, time.perf_counter() - t, seeds=(args.seed,))  # the floor's seeds are in r
