"""What it filled in: a patch bank whose nearest patches are known by construction."""
import numpy as np
import pytest
import torch

from milan_lab.data.scenes import make_labelled_scene, patch_labels
from milan_lab.errors import ConfigError
from milan_lab.evaluation import patch_bank as pb


def hand_bank() -> pb.PatchBank:
    """Four 2-px patches: three axis directions and the diagonal of the first two; patch i is filled with i."""
    features = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    crops = np.stack([np.full((2, 2, 3), i, np.uint8) for i in range(4)])
    return pb.PatchBank(features, torch.tensor([0, 1, 2, 1]), crops)


def test_nearest_patches_of_a_hand_made_bank():
    bank = hand_bank()
    assert torch.allclose(bank.features.norm(dim=1), torch.ones(4))
    sim, idx = pb.nearest(bank, torch.tensor([[0.9, 0.1, 0], [0.1, 0.1, 5], [1, 0.9, 0]]), k=2)
    assert idx[:, 0].tolist() == [0, 2, 3] and idx[2, 1] == 0
    assert sim[1, 0] == pytest.approx(5 / np.sqrt(25.02)) and (sim[:, 0] >= sim[:, 1]).all()
    hits = pb.retrieval_hits(bank, torch.tensor([[0.9, 0.1, 0], [0, 0, 1.0]]), [1, 2], k=1)
    assert hits.tolist() == [False, True]  # nearest to the first is patch 0, of class 0, not 1
    assert pb.retrieval_hits(bank, torch.tensor([[0.9, 0.1, 0]]), [1], k=2).tolist() == [True]  # patch 3 is class 1
    with pytest.raises(ConfigError, match="k must be in 1..4"):
        pb.nearest(bank, torch.ones(1, 3), k=5)
    with pytest.raises(ConfigError, match="one label and one crop"):
        pb.PatchBank(torch.ones(2, 3), torch.zeros(3), np.zeros((2, 2, 2, 3), np.uint8))


def test_filled_in_reads_each_hidden_patch_and_pastes_its_nearest():
    bank = hand_bank()
    pred = torch.tensor([[0, 0, 1.0], [0.2, 1, 0], [1, 0, 0], [0, 0.1, 1]])    # an image of 4 patches (2 x 2)
    target = torch.tensor([[0, 0, 1.0], [1, 1, 0], [1, 0, 0], [1, 0, 0.1]])
    mask = [0, 1, 0, 1]                          # patches 1 and 3 hidden
    r = pb.filled_in(bank, pred, target, mask, true_labels=[2, 1, 0, 0], k=1)
    assert r["patches"].tolist() == [1, 3]
    assert r["from_pred"].tolist() == [1, 2] and r["from_target"].tolist() == [3, 0]
    assert r["hits"].tolist() == [True, False] and r["accuracy"] == 0.5 and r["object_accuracy"] == 1.0
    own = np.full((4, 2, 2, 3), 9, np.uint8)
    img = pb.pasted(own, bank, r["patches"], r["from_pred"])
    assert img.shape == (4, 4, 3)
    assert (img[:2, :2] == 9).all() and (img[:2, 2:] == 1).all() and (img[2:, :2] == 9).all() and (img[2:, 2:] == 2).all()
    with pytest.raises(ConfigError, match="no hidden patch"):
        pb.filled_in(bank, pred, target, [0, 0, 0, 0], [0, 0, 0, 0])


def test_bank_of_scenes_holds_each_patch_with_its_target_and_class(tiny_teacher):
    bank = pb.build_patch_bank(tiny_teacher, n_scenes=2)
    assert len(bank) == 2 * 16 and bank.crops.shape == (32, 8, 8, 3)
    image, labels = make_labelled_scene(0, "val", 1, 32)
    assert np.array_equal(bank.labels[16:].numpy(), patch_labels(labels, 8).reshape(-1))
    assert np.array_equal(bank.crops[16 + 6], image[8:16, 16:24])  # patch 6 of a 4 x 4 grid: row 1, column 2
    sim, idx = pb.nearest(bank, bank.features[[3, 20]], k=1)
    assert idx[:, 0].tolist() == [3, 20] and torch.allclose(sim, torch.ones(2, 1))


def test_top_words_are_the_nearest_text_embeddings(tiny_teacher):
    words = ["star", "circle", "square"]
    text = tiny_teacher.encode_text(words)
    top = pb.top_words(tiny_teacher, text[[2, 0]] * 3, words, k=2)
    assert [t[0][0] for t in top] == ["square", "star"] and top[0][0][1] == pytest.approx(1.0, abs=1e-5)
    tiny_teacher.tokenizer = None
    assert pb.top_words(tiny_teacher, text, words) == [[], [], []]
