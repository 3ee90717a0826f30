"""The probe suite (evaluation/suite.py, features.py): one extractor, probes in a registry that every
consumer scores through, the kNN vote against a hand-computed case, one atomic result writer."""
import json
import math
import pathlib

import numpy as np
import pytest
import torch

from milan_lab.config import EncoderConfig, get_config
from milan_lab.errors import ConfigError
from milan_lab.evaluation import suite
from milan_lab.evaluation.features import extract, extract_readouts, object_pool, patch_cover, run_frozen
from milan_lab.evaluation.knn import knn_classify, knn_top1
from milan_lab.evaluation.probes import random_twin
from milan_lab.factory.models import load_encoder
from milan_lab.tools import ablation

PRESET = "milan_vit-micro-p8_offline"
ARCH = EncoderConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
TINY = {"eval_train": 16, "eval_val": 16, "seg_train": 8, "seg_val": 8, "seg_steps": 2, "attention_scenes": 4}


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("random", ARCH, seed=0)


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_knn_vote_weights_each_neighbour_by_exp_cosine_over_temperature():
    # query (1, 0); memory: one class-0 point at cos 0.9, two class-1 points at cos 0.5, one class-2 point at cos -1
    a = math.degrees(math.acos(0.9))
    train_f = torch.tensor([_unit(a), _unit(60), _unit(-60), _unit(180)])
    train_y = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([_unit(0)])
    # k=3 at T=0.07: class 0 gets exp(0.9/0.07) = 3.9e5, class 1 gets 2 exp(0.5/0.07) = 2.5e3: the single close one wins
    assert knn_classify(train_f, train_y, query, k=3, temperature=0.07).tolist() == [0]
    # at T=1: exp(0.9) = 2.46 < 2 exp(0.5) = 3.30, the two farther ones outvote it (a plain cosine sum, 0.9 < 1.0, agrees)
    assert knn_classify(train_f, train_y, query, k=3, temperature=1.0).tolist() == [1]
    assert knn_classify(train_f, train_y, query, k=1, temperature=1.0).tolist() == [0]  # the nearest alone
    # k beyond the memory takes all four; the class-2 point adds exp(-1/T), too little to change the vote
    assert knn_classify(train_f, train_y, query, k=20, temperature=1.0).tolist() == [1]
    # top-1 over two queries, one of them right: the opposite query's only k=1 neighbour is the class-2 point
    both = torch.tensor([_unit(0), _unit(180)])
    assert knn_top1((train_f, train_y), (both, torch.tensor([0, 0])), k=1) == 0.5


def test_readouts_are_the_class_token_the_mean_patch_and_the_grid_in_eval_mode_without_gradients(encoder):
    images = torch.randn(5, 3, 32, 32)
    encoder.train()
    with torch.no_grad():
        encoder.eval()
        tokens = encoder.forward_features(images)
    encoder.train()
    cls, labels = extract(encoder, images, "cls", batch_size=2)
    assert labels is None and encoder.training  # its mode is given back
    assert torch.allclose(cls, tokens[:, 0], atol=1e-6) and not cls.requires_grad
    assert torch.allclose(extract(encoder, images, "mean")[0], tokens[:, 1:].mean(1), atol=1e-6)
    grid = extract(encoder, images, "patches", batch_size=3)[0]
    assert grid.shape == (5, 16, 48) and torch.allclose(grid, tokens[:, 1:], atol=1e-6)
    normed = extract(encoder, images, "cls", normalize=True)[0]
    assert torch.allclose(normed.norm(dim=-1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match="object"):
        extract(encoder, images, "object")  # object pooling needs the coverage: object_pool over the grid
    encoder.eval()


def test_readouts_of_one_pass_are_those_of_one_pass_each(encoder, monkeypatch):
    images = torch.randn(6, 3, 32, 32)
    calls = []
    real = type(encoder).forward_features
    monkeypatch.setattr(type(encoder), "forward_features", lambda self, x: calls.append(len(x)) or real(self, x))
    both, _ = extract_readouts(encoder, images, ("cls", "mean", "patches"), normalize=False, batch_size=4)
    assert calls == [4, 2]  # one forward per batch for all three readouts
    for pool in ("cls", "mean", "patches"):
        assert torch.equal(both[pool], extract(encoder, images, pool, batch_size=4)[0])


def test_a_dataset_is_read_without_drawing_from_the_global_generator(encoder):
    data = torch.utils.data.TensorDataset(torch.randn(6, 3, 32, 32), torch.arange(6))
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    feats, labels = run_frozen(encoder, lambda x: x.mean((1, 2, 3))[:, None], data, batch_size=4)
    assert torch.rand(1) == expected  # seeded runs after an evaluation draw what they would have drawn
    assert labels.tolist() == list(range(6)) and feats.shape == (6, 1)


def test_object_pool_weights_patches_by_the_objects_coverage():
    cover = np.zeros((2, 4, 4))
    cover[0, :2, :2] = 1.0  # image 0: the object fills patch 0 of a 2x2 grid of 2-px patches
    cover[0, 2:, :1] = 1.0  # and half of patch 2
    per_patch = patch_cover(cover, 2)
    assert per_patch.tolist() == [[1.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]
    patches = torch.arange(16, dtype=torch.float32).reshape(2, 4, 2)
    pooled = object_pool(patches, per_patch)
    assert pooled[0].tolist() == pytest.approx(((patches[0, 0] + 0.5 * patches[0, 2]) / 1.5).tolist())
    assert pooled[1].tolist() == pytest.approx(patches[1].mean(0).tolist())  # no object: the mean patch


def test_random_twin_is_the_factorys_random_encoder_of_the_same_architecture(encoder):
    twin, again = random_twin(encoder, seed=1), load_encoder("random", ARCH, seed=1)
    assert not twin.training
    for k, v in twin.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


@pytest.fixture
def toy_probe():
    """A probe registered in test code: what it saw of the bench, and one number."""
    seen = []

    @suite.register_probe("toy", "a probe registered by a test", sizes=("eval_train",))
    def toy(bench):
        seen.append({"encoder": bench.encoder, "sizes": dict(bench.sizes), "seed": bench.seed})
        return {"toy": 0.25 + bench.seed}
    yield seen
    del suite.PROBES["toy"]


def test_a_registered_probe_is_scored_with_the_builtin_ones_at_the_declared_sizes(encoder, toy_probe):
    assert "toy" in suite.PROBES and suite.PROBES["toy"].help.startswith("a probe")
    row = suite.score(encoder, ["toy", "knn_cls", "linear_mean"], TINY, seed=1)
    assert row["toy"] == 1.25 and list(row) == ["toy", "knn_cls", "linear_mean"]
    assert 0 <= row["knn_cls"] <= 1 and 0 <= row["linear_mean"] <= 1
    (call,) = toy_probe
    assert call["encoder"] is encoder and call["seed"] == 1 and call["sizes"]["eval_train"] == 16
    assert suite.metrics_of(["toy", "attention"]) == ("toy", "object_ratio", "agreement", "object_mass", "object_auroc")


def test_unknown_probes_and_sizes_are_refused_before_any_work(encoder, toy_probe):
    with pytest.raises(ConfigError, match="'knn_clss'") as e:
        suite.score(encoder, ["toy", "knn_clss"], TINY)
    assert "knn_cls" in str(e.value) and not toy_probe  # the known ones are named; nothing ran
    with pytest.raises(ConfigError, match="'eval_trian'"):
        suite.score(encoder, ["toy"], {"eval_trian": 8})


def test_the_ablations_battery_runs_a_registered_probe(toy_probe, tmp_path):
    over = {"image_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 2, "num_heads": 3}
    sizes = {k: TINY[k] for k in ablation.EVAL_SIZES}
    row = ablation.run_arm(PRESET, ablation.RANDOM, 0, tmp_path, over, probes=("toy", "miou"), **sizes)
    assert row["toy"] == 0.25 and 0 <= row["miou"] <= 1 and row["steps"] == 0
    saved = json.loads((ablation.run_folder(tmp_path, ablation.RANDOM, 0) / "result.json").read_text())
    assert saved["toy"] == 0.25
    (call,) = toy_probe
    assert call["sizes"]["eval_train"] == 16 and call["encoder"].embed_dim == 48
    with pytest.raises(ConfigError, match="'nope'"):
        ablation.run_ablation(PRESET, (0,), str(tmp_path / "other"), over, arms=(ablation.RANDOM,), probes=("nope",))


def test_the_attention_probe_scores_without_a_teacher(encoder):
    row = suite.score(encoder, ["attention"], TINY)
    assert row["agreement"] is None and row["object_ratio"] > 0


def test_a_result_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "run" / "result.json"
    assert suite.write_result(path, {"arm": "a", "miou": 0.5}) == {"arm": "a", "miou": 0.5}
    assert json.loads(path.read_text()) == {"arm": "a", "miou": 0.5}
    real = pathlib.Path.write_text

    def fails_halfway(self, text, *a, **k):  # half the new JSON on disk, then an I/O error
        real(self, text[:len(text) // 2])
        raise OSError("I/O error")

    monkeypatch.setattr(pathlib.Path, "write_text", fails_halfway)
    with pytest.raises(OSError):
        suite.write_result(path, {"arm": "b", "miou": 0.25, "rows": list(range(100))})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"arm": "a", "miou": 0.5}  # the old result, whole
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temporary file left behind


def test_the_pretraining_monitor_scores_through_the_suite(monkeypatch, tmp_path):
    calls = []
    real = suite.score

    def spy(encoder, probes=None, *args, **kwargs):
        calls.append(list(probes))
        return real(encoder, probes, *args, **kwargs)
    monkeypatch.setattr(suite, "score", spy)
    from milan_lab.jobs import pretrain as job
    monkeypatch.setattr(job, "score", spy)
    cfg = get_config("pretrain", PRESET, {"image_size": 32, "embed_dim": 48, "target": "pixels", "sampler": "random",
                                          "decoder": "mae", "offline_size": 32, "batch_size": 16, "epochs": 1,
                                          "max_steps": 1, "knn_every_steps": 1, "knn_train_size": 16, "knn_val_size": 16,
                                          "output_dir": str(tmp_path), "progress": False})
    summary = job.pretrain(cfg)
    assert calls == [["knn_cls"]] and 0 <= summary["knn_acc"] <= 1


def test_probe_eval_scores_any_registered_probe_of_a_checkpoint(toy_probe, tmp_path):
    from milan_lab.evaluation.probes import format_probes, probe_eval
    r = probe_eval("random", PRESET, ["toy", "knn_cls"], {"eval_train": 16, "eval_val": 16}, seed=1)
    assert r["scores"]["toy"] == 1.25 and 0 <= r["scores"]["knn_cls"] <= 1 and "random_init" not in r
    assert r["sizes"]["eval_train"] == 16 and r["probes"] == ["toy", "knn_cls"]
    text = format_probes(r)
    assert "a probe registered by a test" in text and "knn_cls" in text
    missing = str(tmp_path / "no_such_run")
    with pytest.raises(ConfigError, match="'nope'"):  # refused before the checkpoint is looked for
        probe_eval(missing, PRESET, ["nope"])
    with pytest.raises(ConfigError, match="'eval_val'"):
        probe_eval(missing, PRESET, ["toy"], {"eval_val": 0})
