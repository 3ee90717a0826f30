"""k-nearest-neighbour evaluation (DINO's weighted kNN: cosine similarity, k=20, T=0.07)."""
from __future__ import annotations

import torch

from milan_lab.evaluation.features import extract


def extract_features(encoder, dataset, device=None, batch_size: int = 256, pool: str = "cls",
                     progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(L2-normalised features [N, D], labels [N]): the kNN's readout of ``features.extract``
    (``pool`` "cls" or "mean"); ``progress``: the label of a progress bar on stderr (None: no bar)."""
    return extract(encoder, dataset, pool, normalize=True, device=device, batch_size=batch_size, progress=progress)


def knn_classify(train_f, train_y, test_f, k: int = 20, temperature: float = 0.07) -> torch.Tensor:
    """Predicted labels [N_test]: votes of the k most similar training samples, weighted by
    exp(cos / T). ``train_f`` [N, D] and ``test_f`` [M, D] L2-normalised, ``train_y`` [N] class indices."""
    num_classes = int(train_y.max()) + 1
    k = min(k, train_f.shape[0])
    sim, idx = (test_f @ train_f.T).topk(k, dim=1)
    votes = torch.zeros(test_f.shape[0], num_classes)
    votes.scatter_add_(1, train_y[idx], (sim / temperature).exp())
    return votes.argmax(1)


def knn_top1(train, val, k: int = 20, temperature: float = 0.07) -> float:
    """Accuracy on ``val`` = (features, labels) with ``train`` = (features, labels) as memory."""
    return float((knn_classify(*train, val[0], k, temperature) == val[1]).float().mean())
