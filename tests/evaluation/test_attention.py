"""The attention metric: object ratio and agreement on hand-made maps, intervals, and the command."""
import json

import numpy as np
import pytest

from milan_lab.cli import main
from milan_lab.evaluation.attention import agreement, bootstrap_ci, object_ratio, patch_cover

SHIPPED = "milan_lab/assets/milan_tiny_offline.safetensors"


def test_object_ratio_of_a_hand_made_map():
    cover = np.array([[1.0, 0.0, 0.0, 0.0]])           # the object fills patch 0: a quarter of the image
    attn = np.array([[0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3]])  # half the attention on it
    assert object_ratio(attn, cover) == pytest.approx([2.0])
    assert object_ratio(np.ones((1, 4)), cover) == pytest.approx([1.0])  # uniform attention: no preference
    half = np.array([[0.5, 0.5, 0.0, 0.0]])               # an object half-covering two patches: area share 1/4
    assert object_ratio(np.array([[1.0, 0.0, 0.0, 0.0]]), half) == pytest.approx([2.0])


def test_patch_cover_pools_pixels_to_patches():
    cover = np.zeros((1, 4, 4))
    cover[0, :2, :2] = 1.0
    cover[0, 2, 2] = 1.0
    assert patch_cover(cover, 2).tolist() == [[1.0, 0.0, 0.0, 0.25]]


def test_agreement_is_pearson_per_image():
    a = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    b = np.array([[2.0, 4.0, 6.0, 8.0], [4.0, 3.0, 2.0, 1.0]])
    assert agreement(a, b).tolist() == pytest.approx([1.0, 0.0])  # a flat map agrees with nothing
    assert agreement(a[:1], -a[:1]) == pytest.approx([-1.0])
    assert agreement(a, b)[0] == pytest.approx(np.corrcoef(a[0], b[0])[0, 1])


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1, 1, 30), rng.normal(1, 1, 3000)
    lo, hi = bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large)
    assert hi2 - lo2 < (hi - lo) / 5
    assert bootstrap_ci(np.full(10, 2.0)) == (2.0, 2.0)


def test_attention_command_reports_the_shipped_model_against_random_encoders(tmp_path, capsys):
    record = tmp_path / "attention.json"
    assert main(["attention", SHIPPED, "-n", "48", "--random-inits", "2", "--json", "--record", str(record)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scenes"] == 48 and len(out["random"]) == 2 and out["image_size"] == 64
    enc = out["encoder"]
    assert len(enc["object_ratio_per_head"]) == 3 and len(enc["agreement_per_head"]) == 3
    lo, hi = enc["object_ratio"]["ci95"]
    assert lo <= enc["object_ratio"]["mean"] <= hi
    # the pretrained student looks at the object more than any random initialisation does
    assert enc["object_ratio"]["mean"] > max(r["object_ratio"]["mean"] for r in out["random"])
    assert out["teacher"]["object_ratio"]["mean"] > 1
    # the pixel-saliency floor is scored on the same scenes, by the same metrics (it has no heads)
    sal = out["saliency"]
    assert set(sal) == {"object_ratio", "object_mass", "object_auroc", "agreement"} and sal["object_auroc"]["mean"] > 0.5
    assert 0 < enc["object_mass"]["mean"] < 1 and len(enc["object_auroc_per_head"]) == 3
    saved = json.loads(record.read_text())
    assert saved["kind"] == "attention" and saved["seeds"] == [0] and saved["matmul_peak_gflops"] > 0
    assert saved["result"]["random_init_seeds"] == [0, 1]  # the floor's seeds; the scenes' seed is the record's
    assert saved["command"].startswith(f"milan-lab attention {SHIPPED} -n 48")
    assert saved["result"]["encoder"] == enc
