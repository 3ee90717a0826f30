"""Check that milan_lab's MILAN equals mmpretrain's, given the same weights and visible patches.

Needs mmpretrain's modules (not a dependency of milan-lab; mmcv-lite suffices, no CUDA ops):

    python -m venv --system-site-packages /tmp/mmenv
    /tmp/mmenv/bin/pip install --no-deps mmcv-lite==2.2.0 mmengine==0.10.7 mmpretrain==1.2.0
    /tmp/mmenv/bin/pip install addict yapf termcolor rich einops modelindex mat4py importlib-metadata opencv-python-headless
    PYTHONPATH=. /tmp/mmenv/bin/python scripts/verify_mmpretrain.py

It builds mmpretrain's ``MILANViT`` + ``MILANPretrainDecoder`` at a small size with random weights,
converts their state dict with ``milan_lab.convert.from_mmpretrain`` (strict), feeds both the same
images and class-token importance under the same RNG seed (so ``torch.multinomial`` picks the
same visible patches), and prints the largest differences of latent and prediction. Exits with
status 1 when any difference exceeds its tolerance (``TOL``), so it can gate a change.
"""
import sys

import torch
from mmpretrain.models.necks.milan_neck import MILANPretrainDecoder
from mmpretrain.models.selfsup.milan import MILANViT

from milan_lab.config import ModelConfig
from milan_lab.convert import from_mmpretrain, to_mmpretrain
from milan_lab.models.masking import semantic_masking
from milan_lab.models.milan import MILAN
from milan_lab.io.weights import load_into

TOL = 1e-5  # fp32, same weights and inputs: only summation order may differ
failures = []


def check(name: str, diff: torch.Tensor, tol: float = TOL) -> None:
    diff = float(diff)
    ok = diff <= tol
    print(f"{name:<22} max |diff| {diff:.2e}  {'ok' if ok else f'FAIL (tolerance {tol:.0e})'}")
    if not ok:
        failures.append(name)


torch.manual_seed(0)
arch = dict(embed_dims=48, num_layers=2, num_heads=3, feedforward_channels=192)
backbone = MILANViT(arch=arch, img_size=32, patch_size=8, mask_ratio=0.75)
backbone.init_weights()
backbone.eval()
neck = MILANPretrainDecoder(num_patches=16, patch_size=8, embed_dim=48, decoder_embed_dim=32, decoder_depth=2,
                            decoder_num_heads=2, predict_feature_dim=24)
neck.init_weights()
neck.eval()
for p in list(backbone.parameters()) + list(neck.parameters()):  # make every weight non-trivial
    p.data.add_(torch.randn_like(p) * 0.02)
mm_state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
            **{f"neck.{k}": v for k, v in neck.state_dict().items()}}

cfg = ModelConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, decoder_embed_dim=32,
                  decoder_depth=2, decoder_num_heads=2, target_dim=24)
ours = MILAN(cfg, require_teacher=False).eval()
load_into(ours, from_mmpretrain(mm_state, "pretrain"), "mmpretrain state dict")
back = to_mmpretrain(ours.student_state_dict())
assert set(back) == set(mm_state), set(back) ^ set(mm_state)

x = torch.randn(4, 3, 32, 32)
importance = torch.rand(4, 16)
with torch.no_grad():
    torch.manual_seed(123)
    latent_mm, ids_restore, ids_keep, ids_dump = backbone(x, importance)
    pred_mm = neck(latent_mm, ids_restore, ids_keep, ids_dump)
    torch.manual_seed(123)
    masking = semantic_masking(importance, 0.75)
    assert torch.equal(masking.ids_keep, ids_keep) and torch.equal(masking.ids_restore, ids_restore)
    latent = ours.forward_encoder(x, masking)
    pred = ours.forward_decoder(latent, masking)
    feats_mm = backbone(x, None)
    feats = ours.extract_feat(x)
print(f"keys: {len(mm_state)} mmpretrain keys mapped one-to-one, round trip exact")
check("latent", (latent - latent_mm).abs().max())
check("prediction", (pred - pred_mm).abs().max())
check("features", (feats - (feats_mm[0] if isinstance(feats_mm, tuple) else feats_mm)).abs().max())

# --- the benchmark classifiers: fine-tuning (avg pool, ln2, head.fc) and linear probe (cls, BN neck, head.fc)
from mmpretrain.models.backbones import VisionTransformer  # noqa: E402
from mmpretrain.models.heads import LinearClsHead  # noqa: E402
from mmpretrain.models.necks import ClsBatchNormNeck  # noqa: E402

from milan_lab.models.classifier import MILANClassifier  # noqa: E402

for kind in ("finetune", "linear"):
    torch.manual_seed(1)
    vit = VisionTransformer(arch=arch, img_size=32, patch_size=8, final_norm=kind == "linear",
                            out_type="avg_featmap" if kind == "finetune" else "cls_token")
    head = LinearClsHead(num_classes=5, in_channels=48)
    parts = [("backbone", vit), ("head", head)]
    if kind == "linear":
        neck = ClsBatchNormNeck(input_features=48)
        neck.bn.running_mean.normal_()
        neck.bn.running_var.uniform_(0.5, 2)
        parts.append(("neck", neck))
    state = {}
    for prefix, module in parts:
        for p in module.parameters():
            p.data.add_(torch.randn_like(p) * 0.02)
        module.eval()
        state.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
    clf = MILANClassifier(cfg, 5, kind).eval()
    load_into(clf, from_mmpretrain(state, kind), f"mmpretrain {kind} state dict")
    with torch.no_grad():
        feats = vit(x)[-1]
        if kind == "linear":
            feats = neck((feats,))[-1]
        logits_mm = head((feats,))
        logits = clf(x)
    check(f"{kind} logits ({len(state)} keys)", (logits - logits_mm).abs().max())

if failures:
    print(f"FAILED: {', '.join(failures)} differ from mmpretrain beyond {TOL:.0e}")
    sys.exit(1)
print("all outputs equal mmpretrain's within tolerance")
