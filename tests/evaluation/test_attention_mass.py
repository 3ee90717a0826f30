"""Attention mass on the object and the map's AUROC against it, on hand-made maps; the pixel-saliency
baseline on a synthetic image; the attention probe and report carrying the new metrics."""
import warnings

import numpy as np
import pytest

from milan_lab.config import EncoderConfig
from milan_lab.evaluation import suite
from milan_lab.evaluation.attention import encoder_attention_report, map_metrics, object_auroc, object_mass, object_ratio, summary
from milan_lab.evaluation.probes import format_attention
from milan_lab.evaluation.saliency import colour_distinctness
from milan_lab.factory.models import load_encoder

COVER = np.array([[1.0, 0.5, 0.0, 0.0]])  # the object fills patch 0 and half of patch 1


def test_mass_is_the_coverage_weighted_share_of_the_attention():
    attn = np.array([[0.4, 0.2, 0.3, 0.1]])
    assert object_mass(attn, COVER) == pytest.approx([0.4 + 0.5 * 0.2])  # by hand: 0.5 of a total of 1
    assert object_mass(2 * attn, COVER) == pytest.approx([0.5])          # a share: the map's scale does not matter
    assert object_mass(COVER, COVER) == pytest.approx([(1 + 0.25) / 1.5])  # the map equal to the cover
    assert object_mass(np.ones((1, 4)), COVER) == pytest.approx([COVER.mean()])  # uniform: the area share
    assert object_mass(np.zeros((1, 4)), COVER) == pytest.approx([COVER.mean()])  # an all-zero map counts as uniform
    # the ratio is the mass over the area share, as before
    assert object_ratio(attn, COVER) == pytest.approx(object_mass(attn, COVER) / COVER.mean())


def test_auroc_is_one_for_the_cover_half_for_a_flat_map_zero_for_the_inverted_one():
    whole = np.array([[1.0, 1.0, 0.0, 0.0]])  # an object filling whole patches
    assert object_auroc(whole, whole) == pytest.approx([1.0])
    assert object_auroc(np.full((1, 4), 0.25), whole) == pytest.approx([0.5])  # every pair tied: half
    assert object_auroc(1 - whole, whole) == pytest.approx([0.0])
    # a half-covered patch is half object, half background: its two halves tie (the pixels of a patch share its
    # score), so even the cover itself stays below 1. By hand: positive weights (1, .5, 0, 0), negative (0, .5, 1, 1),
    # P = 1.5, N = 2.5; patch 0 outranks all negatives (1 x 2.5), patch 1 ties its own half (.5 x .5 / 2) and beats
    # patches 2 and 3 (.5 x 2); a map ranking patch 0 > 1 > 2 = 3 scores the same
    ceiling = (1.0 * 2.5 + 0.5 * (0.25 + 2.0)) / (1.5 * 2.5)
    assert object_auroc(COVER, COVER) == pytest.approx([ceiling])
    assert object_auroc(np.array([[3.0, 2.0, 1.0, 1.0]]), COVER) == pytest.approx([ceiling])
    assert object_auroc(np.array([[2.0, 3.0, 1.0, 1.0]]), COVER) < ceiling  # the half-covered patch first: worse
    # no object, or an object over everything: undefined
    scores = np.array([[3.0, 2.0, 1.0, 1.0]])
    assert np.isnan(object_auroc(scores, np.zeros((1, 4)))).all() and np.isnan(object_auroc(scores, np.ones((1, 4)))).all()


def test_auroc_matches_sklearn_with_coverage_as_sample_weight():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    cover = np.clip(rng.uniform(-0.5, 1.5, (5, 16)), 0, 1)
    scores = rng.integers(0, 4, (5, 16)).astype(float)  # few distinct values: many ties
    for s, c in zip(scores, cover):
        expected = metrics.roc_auc_score(np.r_[np.ones(16), np.zeros(16)], np.r_[s, s], sample_weight=np.r_[c, 1 - c])
        assert object_auroc(s[None], c[None]) == pytest.approx([expected])


def test_colour_saliency_finds_a_uniquely_coloured_object_on_a_plain_background():
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(120, 6, (1, 32, 32, 3)), 0, 255).astype(np.uint8)  # grey with a little noise
    mask = np.zeros((1, 32, 32))
    mask[0, 8:20, 12:26] = 1.0
    image[mask.astype(bool)] = (220, 30, 30)                                       # a red object
    cover = mask.reshape(1, 8, 4, 8, 4).mean((2, 4)).reshape(1, -1)
    sal = colour_distinctness(image, 4)
    assert sal.shape == (1, 64) and (sal >= 0).all()
    assert object_auroc(sal, cover)[0] > 0.9
    with pytest.raises(ValueError, match="5-px"):
        colour_distinctness(image, 5)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("random", EncoderConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3), seed=0)


def test_the_attention_probe_reports_mass_and_auroc_beside_the_old_metrics(encoder):
    row = suite.score(encoder, ["attention"], {"attention_scenes": 4})
    assert set(row) == {"object_ratio", "agreement", "object_mass", "object_auroc"}
    assert 0 <= row["object_mass"] <= 1 and 0 <= row["object_auroc"] <= 1 and row["agreement"] is None
    assert suite.metrics_of(["attention"]) == ("object_ratio", "agreement", "object_mass", "object_auroc")


def test_the_report_scores_the_saliency_baseline_like_the_encoders(encoder):
    r = encoder_attention_report(encoder, None, n=4, random_encoders=[encoder])
    for row in (r["encoder"], r["random"][0], r["saliency"]):
        assert 0 <= row["object_mass"]["mean"] <= 1 and 0 <= row["object_auroc"]["mean"] <= 1
    assert len(r["encoder"]["object_auroc_per_head"]) == 3
    text = format_attention({"checkpoint": "random", **r})
    assert "pixel saliency" in text and text.count("AUROC") >= 4


def test_an_object_covering_no_patch_has_an_undefined_ratio_without_a_warning():
    cover = np.vstack([COVER, np.zeros((1, 4))])
    attn = np.array([[0.4, 0.2, 0.3, 0.1], [0.4, 0.2, 0.3, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's divide-by-zero RuntimeWarning would reach a CLI user
        ratio = object_ratio(attn, cover)
    assert ratio[0] == pytest.approx(0.5 / COVER.mean()) and np.isnan(ratio[1])


def test_a_nan_score_makes_that_image_s_auroc_undefined_not_the_top_rank():
    cover = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    scores = np.array([[0.0, 0.0, 1.0, np.nan], [1.0, 1.0, 0.0, 0.0]])  # image 0 ranked nan above everything: 0.25
    auroc = object_auroc(scores, cover)
    assert np.isnan(auroc[0]) and auroc[1] == pytest.approx(1.0)


def test_a_summary_counts_its_defined_values_and_stays_a_number_where_none_is():
    some = summary(np.array([0.5, np.nan, 0.7, np.inf]))
    assert some["n"] == 2 and some["mean"] == pytest.approx(0.6)
    none = summary(np.full(3, np.nan))
    assert none["n"] == 0 and np.isnan(none["mean"]) and all(np.isnan(none["ci95"]))
    assert f"{none['mean']:.2f} [{none['ci95'][0]:.2f}, {none['ci95'][1]:.2f}]" == "nan [nan, nan]"  # a table formats it


def test_the_attention_report_says_on_how_many_scenes_a_metric_was_defined():
    cover = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    attn = np.array([[0.4, 0.3, 0.2, 0.1]] * 4)
    report = {"checkpoint": "x", "scenes": 4, "image_size": 32, "encoder": map_metrics(attn, cover, None),
              "random": [map_metrics(attn, np.zeros((4, 4)), None)]}  # an object in no scene
    assert report["encoder"]["object_auroc"]["n"] == 3 and report["encoder"]["object_mass"]["n"] == 4
    encoder, random = format_attention(report).splitlines()[2:]
    assert encoder.count("(3 of 4 scenes)") == 2 and "mass" in encoder  # ratio and AUROC; the mass is defined on all 4
    assert "mass 0.000 [" in random and random.count("undefined (0 of 4 scenes)") == 2
