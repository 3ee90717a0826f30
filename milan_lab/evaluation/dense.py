"""The dense (segmentation) probe: the linear protocol self-supervised ViT papers report.

A frozen encoder's patch tokens [N, L, D] -> one linear classifier per patch (shared weights)
-> logits [N, C, g, g] upsampled bilinearly to pixels -> cross-entropy. Scored by mean IoU over
classes and pixel accuracy on the validation split. Features are extracted once and cached, so
the probe trains in seconds on a CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from milan_lab.data.segmentation import IGNORE
from milan_lab.evaluation.features import extract
from milan_lab.evaluation.progress import bar


def patch_features(encoder, dataset, batch_size: int = 128, progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(patch tokens [N, L, D] after the final norm, labels [N, H, W]) of a frozen encoder: the
    ``patches`` readout of ``features.extract``; ``progress``: the label of a progress bar on stderr (None: no bar)."""
    return extract(encoder, dataset, "patches", batch_size=batch_size, progress=progress)


class SegProbe(torch.nn.Module):
    """Linear per-patch classifier; ``forward`` returns pixel logits [N, C, H, W]."""

    def __init__(self, dim: int, num_classes: int, image_size: int):
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim, elementwise_affine=False)  # features of any scale train alike
        self.head = torch.nn.Linear(dim, num_classes)
        self.image_size = image_size

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length, _ = tokens.shape
        g = int(round(length ** 0.5))
        logits = self.head(self.norm(tokens)).transpose(1, 2).reshape(n, -1, g, g)
        return F.interpolate(logits, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)


def train_probe(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, steps: int = 300, lr: float = 3e-2,
                batch_size: int = 32, seed: int = 0, progress: str | None = None) -> SegProbe:
    """AdamW on random mini-batches of cached features, cosine lr; deterministic in ``seed``;
    ``progress``: the label of a progress bar on stderr (None: no bar)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    probe = SegProbe(feats.shape[-1], num_classes, labels.shape[-1])
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in bar(range(steps), progress or "", progress is not None, unit="step"):
        idx = torch.randint(0, len(feats), (min(batch_size, len(feats)),), generator=g)
        loss = F.cross_entropy(probe(feats[idx]), labels[idx], ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return probe.eval()


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] pixel counts (rows: truth, columns: prediction); ``IGNORE`` pixels left out."""
    keep = target != IGNORE
    idx = target[keep] * num_classes + pred[keep]
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def seg_scores(conf: torch.Tensor) -> dict:
    """mIoU (over classes that occur in the truth or the prediction), per-class IoU (None for a
    class absent from both) and pixel accuracy, from a confusion matrix."""
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    iou = [float(i / u) if u > 0 else None for i, u in zip(inter, union)]
    present = [v for v in iou if v is not None]
    return {"miou": sum(present) / len(present) if present else 0.0, "iou": iou,
            "pixel_acc": float(inter.sum() / conf.sum().clamp_min(1))}


@torch.no_grad()
def predict(probe: SegProbe, feats: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted label maps [N, H, W]."""
    return torch.cat([probe(feats[i:i + batch_size]).argmax(1) for i in range(0, len(feats), batch_size)])


def evaluate_probe(probe: SegProbe, feats: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    return seg_scores(confusion(predict(probe, feats), labels, num_classes))


def seg_probe(encoder, train_set, val_set, num_classes: int, steps: int = 300, seed: int = 0) -> tuple[dict, SegProbe]:
    """Train the linear dense probe on ``train_set`` and score it on ``val_set``."""
    train = patch_features(encoder, train_set)
    val = patch_features(encoder, val_set)
    probe = train_probe(*train, num_classes, steps=steps, seed=seed)
    return evaluate_probe(probe, *val, num_classes), probe
