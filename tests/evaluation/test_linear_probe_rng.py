"""The quick linear probe seeds its head without touching the caller's RNG stream (a monitor probe mid-run
must not shift training's stream), and the suite sizes its head from the dataset's classes."""
import torch

from milan_lab.config import EncoderConfig
from milan_lab.evaluation import suite
from milan_lab.evaluation.linear import quick_linear_probe
from milan_lab.factory.models import load_encoder


def _features(n=24, d=8, classes=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.arange(n) % classes


def test_the_probe_leaves_the_global_rng_as_it_was_and_is_still_seeded():
    train, val = _features(), _features(12)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = quick_linear_probe(train, val, 3, steps=5, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert quick_linear_probe(train, val, 3, steps=5, seed=1) == first


class Scenes(torch.utils.data.Dataset):
    """Five classes, of which the train split shows only the first three."""
    classes = ["a", "b", "c", "d", "e"]

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.full((3, 32, 32), float(i) / len(self)), self.labels[i]


def test_the_suites_linear_head_has_one_logit_per_dataset_class(monkeypatch):
    seen = []
    monkeypatch.setattr(suite, "quick_linear_probe", lambda train, val, n, **k: seen.append(n) or 0.0)
    encoder = load_encoder("random", EncoderConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3))
    data = (Scenes([0, 1, 2, 0, 1, 2]), Scenes([3, 4, 0]))
    suite.score(encoder, ["linear_cls"], datasets={"scenes": data}, device="cpu")
    assert seen == [5]
