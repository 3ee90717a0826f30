"""Step time of milan_lab's MILAN student against mmpretrain's, same configuration, same process.

Outside the project on purpose (mmpretrain is not a dependency); run it in the side venv that
``scripts/verify_mmpretrain.py`` describes:

    PYTHONPATH=. /tmp/mmenv/bin/python scripts/compare_step_time.py [--batch 64] [--rounds 5]

Both sides get the offline default's student (64 px, patch 8, encoder 192 x 6, prompting decoder
128 x 2, 128-d targets), identical weights (converted with ``milan_lab.convert``), the same images,
importance and targets. One step = encoder on the visible patches + decoder + the same cosine loss
+ backward; the teacher pass is left out (it is the same frozen CLIP forward in both and would only
dilute the comparison). Rounds alternate between the two so that a machine whose speed drifts
(shared 2-core machines do) treats both alike; the script prints the median ms per step of each
and their ratio, and exits 1 when milan_lab is more than 5 % slower.
"""
import argparse
import logging
import statistics
import sys
import time

import torch
from mmengine.logging import MMLogger
from mmpretrain.models.necks.milan_neck import MILANPretrainDecoder
from mmpretrain.models.selfsup.milan import MILANViT

from milan_lab.config import get_config
from milan_lab.convert import from_mmpretrain
from milan_lab.models.losses import cosine_loss
from milan_lab.models.masking import semantic_masking
from milan_lab.models.milan import MILAN
from milan_lab.io.weights import load_into


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5, help="steps per round")
    args = p.parse_args()

    m = get_config("pretrain", "milan_vit-tiny-p8_offline").model
    grid = m.image_size // m.patch_size
    torch.manual_seed(0)
    backbone = MILANViT(arch=dict(embed_dims=m.embed_dim, num_layers=m.depth, num_heads=m.num_heads,
                                  feedforward_channels=int(m.embed_dim * m.mlp_ratio)),
                        img_size=m.image_size, patch_size=m.patch_size, mask_ratio=m.mask_ratio)
    neck = MILANPretrainDecoder(num_patches=grid * grid, patch_size=m.patch_size, embed_dim=m.embed_dim,
                                decoder_embed_dim=m.decoder_embed_dim, decoder_depth=m.decoder_depth,
                                decoder_num_heads=m.decoder_num_heads, predict_feature_dim=m.target_dim)
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # else it logs every initialised tensor
    backbone.init_weights()
    neck.init_weights()
    ours = MILAN(m, require_teacher=False)
    state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
             **{f"neck.{k}": v for k, v in neck.state_dict().items()}}
    load_into(ours, from_mmpretrain(state, "pretrain"), "mmpretrain state dict")
    for module in (backbone, neck, ours):
        module.train()

    x = torch.randn(args.batch, 3, m.image_size, m.image_size)
    importance = torch.rand(args.batch, grid * grid).softmax(-1)
    target = torch.randn(args.batch, 1 + grid * grid, m.target_dim)

    def step_mm():
        latent, ids_restore, ids_keep, ids_dump = backbone(x, importance)
        cosine_loss(neck(latent, ids_restore, ids_keep, ids_dump), target).backward()

    def step_ours():
        masking = semantic_masking(importance, m.mask_ratio)
        latent = ours.forward_encoder(x, masking)
        cosine_loss(ours.forward_decoder(latent, masking), target).backward()

    times = {"mmpretrain": [], "milan_lab": []}
    fns = {"mmpretrain": step_mm, "milan_lab": step_ours}
    for fn in fns.values():  # warm-up
        for _ in range(2):
            fn()
    for _ in range(args.rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append(1e3 * (time.perf_counter() - t) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"student step (encoder + decoder + loss + backward), batch {args.batch}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} alternating rounds x {args.steps} steps:")
    for k, v in med.items():
        print(f"  {k:<11} {v:7.1f} ms/step   (rounds: {', '.join(f'{t:.0f}' for t in times[k])})")
    ratio = med["milan_lab"] / med["mmpretrain"]
    print(f"milan_lab / mmpretrain = {ratio:.3f}")
    if ratio > 1.05:
        print("FAILED: milan_lab's step is more than 5 % slower than mmpretrain's")
        sys.exit(1)


if __name__ == "__main__":
    main()
