"""Top-1 / top-5 accuracy and the confusion matrix of a classifier on a dataset: what fine-tuning
and linear probing report each epoch, and what ``milan-lab test`` reports on a folder."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from milan_lab.data.datasets import collate_skipping
from milan_lab.engine.common import autocast
from milan_lab.errors import DataError


@torch.no_grad()
def evaluate(model, dataset, device, amp_dtype, batch_size: int = 256, num_classes: int | None = None) -> dict:
    """top-1 / top-5 accuracy and the confusion matrix [C, C] (rows: truth)."""
    was = model.training
    model.eval()
    correct1 = correct5 = n = 0
    num_classes = num_classes or model.num_classes
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for batch in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator(), collate_fn=collate_skipping):
        if batch is None:  # every file of this batch was unreadable (reported by the dataset)
            continue
        images, labels = batch
        with autocast(device, amp_dtype):
            logits = model(images.to(device)).float().cpu()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == labels).sum().item()
        correct5 += (top == labels[:, None]).any(1).sum().item()
        n += len(labels)
        confusion.index_put_((labels, top[:, 0]), torch.ones_like(labels), accumulate=True)
    model.train(was)
    if n == 0:
        raise DataError("no readable images to evaluate")
    return {"top1": correct1 / n, "top5": correct5 / n, "confusion": confusion.tolist()}
