"""The explorer's text maps: the vocabulary beside the prompt box, unknown words named under the maps, and
the "where" row drawn from MaskCLIP's map (the app is built, not launched)."""
import pytest

from milan_lab.data.scenes import make_scene
from milan_lab.viz.panels import DISPLAY, Explorer


@pytest.fixture(scope="module")
def demo():
    from milan_lab.app import build_app
    return build_app(Explorer.from_defaults())


def _handler(demo, name):
    return next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name)


def test_the_prompt_box_lists_the_teachers_vocabulary(demo):
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "prompts")
    assert "words" in box.info and all(w in box.info for w in ("star", "crescent", "purple", "bottom", "large"))
    assert "<unk>" not in box.info and "<end>" not in box.info


def test_unknown_words_are_named_once_under_the_text_maps(demo):
    on_reconstruct = _handler(demo, "on_reconstruct")
    image = make_scene(0, "test", 1, DISPLAY)[0]
    *_, text_img, note = on_reconstruct(image, "semantic", 0.75, 0, "a cat, a purple cat with stripes, a triangle")
    assert "unknown to this teacher: cat, with, stripes" in note and note.count("cat") == 1
    assert text_img.ndim == 3 and text_img.shape[2] == 3
    *_, note = on_reconstruct(image, "semantic", 0.75, 0, "a purple triangle")
    assert "unknown" not in note
