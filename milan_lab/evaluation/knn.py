"""k-nearest-neighbour evaluation (DINO's weighted kNN: cosine similarity, k=20, T=0.07)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from milan_lab.evaluation.progress import bar


@torch.no_grad()
def extract_features(encoder, dataset, device, batch_size: int = 256, pool: str = "cls",
                     progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(L2-normalised features [N, D], labels [N]) from ``encoder.forward_features``; ``progress``:
    the label of a progress bar on stderr (None: no bar)."""
    was_training = encoder.training
    encoder.eval()
    feats, labels = [], []
    batches = DataLoader(dataset, batch_size=batch_size, generator=torch.Generator())
    for images, y in bar(batches, progress or "", progress is not None, unit="batch"):
        tokens = encoder.forward_features(images.to(device))
        f = tokens[:, 0] if pool == "cls" else tokens[:, 1:].mean(1)
        feats.append(F.normalize(f.float(), dim=-1).cpu())
        labels.append(torch.as_tensor(y))
    encoder.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def knn_classify(train_f, train_y, test_f, k: int = 20, temperature: float = 0.07) -> torch.Tensor:
    """Predicted labels [N_test]: votes of the k most similar training samples, weighted by
    exp(cos / T)."""
    num_classes = int(train_y.max()) + 1
    k = min(k, train_f.shape[0])
    sim, idx = (test_f @ train_f.T).topk(k, dim=1)
    votes = torch.zeros(test_f.shape[0], num_classes)
    votes.scatter_add_(1, train_y[idx], (sim / temperature).exp())
    return votes.argmax(1)


def knn_top1(train, val, k: int = 20, temperature: float = 0.07) -> float:
    """Accuracy on ``val`` = (features, labels) with ``train`` = (features, labels) as memory."""
    return float((knn_classify(*train, val[0], k, temperature) == val[1]).float().mean())


def knn_accuracy(encoder, train_set, val_set, device, k: int = 20, temperature: float = 0.07) -> float:
    return knn_top1(extract_features(encoder, train_set, device), extract_features(encoder, val_set, device),
                    k, temperature)
