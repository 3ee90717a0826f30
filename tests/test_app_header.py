"""The explorer says what it runs (teacher and model in the header), has controls that match the
model, and tells a run without a dense probe how to make one. Built, not launched: no server needed."""
import pytest

from milan_lab.viz.panels import Explorer


@pytest.fixture
def run_explorer(tiny_teacher, tiny_cfg):
    """A model as ``milan-lab app --checkpoint outputs/my-run`` loads it, from a run with no probe."""
    from milan_lab.models.milan import MILAN
    explorer = Explorer(tiny_teacher, MILAN(tiny_cfg, tiny_teacher))
    explorer.model_source = "outputs/my-run"
    return explorer


def _blocks(demo):
    return list(demo.blocks.values())


def test_a_run_without_a_probe_is_told_the_command_that_makes_one(run_explorer):
    from milan_lab.app import build_app, header, no_probe_note
    assert not run_explorer.has_probe
    assert "milan-lab seg-probe outputs/my-run" in no_probe_note(run_explorer)
    text = header(run_explorer)
    assert "`tiny-random`" in text and "`outputs/my-run`" in text and "32 px, patch 8" in text
    demo = build_app(run_explorer)
    notes = [b for b in _blocks(demo) if getattr(b, "elem_id", None) == "no-probe"]
    assert len(notes) == 1 and "milan-lab seg-probe outputs/my-run" in notes[0].value


def test_the_controls_match_the_model(run_explorer):
    import gradio as gr

    from milan_lab.app import build_app
    demo = build_app(run_explorer)
    by_label = {b.label: b for b in _blocks(demo) if isinstance(b, (gr.Slider, gr.Dropdown))}
    layer = by_label["teacher layer"]
    assert (layer.minimum, layer.maximum, layer.step) == (0, run_explorer.num_layers - 1, 1)  # one position a layer
    assert len(by_label["teacher head"].choices) == 1 + run_explorer.teacher.num_heads
    assert len(by_label["student head"].choices) == 1 + run_explorer.model.encoder.num_heads
    ratios = [b for b in _blocks(demo) if isinstance(b, gr.Slider) and b.label == "mask ratio"]
    ids = [b.elem_id for b in ratios]
    assert len(set(ids)) == len(ids) and {"ratio", "rec-ratio"} <= set(ids)  # each tab its own; Reconstruction's apart
    uploads = [b for b in _blocks(demo) if isinstance(b, (gr.File, gr.UploadButton))
               or isinstance(b, gr.Image) and b.interactive is not False and b.elem_id != "input-image"]
    assert uploads == []  # one upload area: the image itself


def test_the_shipped_models_are_named():
    d = Explorer.from_defaults().describe()
    assert d["teacher"] == "shipped" and d["model"] == "milan_tiny_offline.safetensors"
    assert "shipped" in d["model_detail"] and "layers" in d["teacher_detail"]
