"""The explorer's input guards (milan_lab/app_guards.py), on the components themselves: a value outside a
control's choices or range, or an unreadable image, is one `user error:` line naming the control or file,
and a good value passes through to Gradio's own preprocessing. (Through a running app: test_app_values.py.)"""
import logging

import pytest


def _user_error_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "milan_lab.app"]


def test_controls_refuse_values_outside_their_choices_and_ranges(caplog):
    import gradio as gr

    from milan_lab.app_guards import check_control_values
    head = gr.Dropdown(["mean", "0", "1"], value="mean", label="teacher head")
    ratio = gr.Slider(0.1, 0.9, value=0.5, label="mask ratio")
    seed = gr.Number(value=0, precision=0, minimum=0, maximum=10, label="seed")
    check_control_values(head, ratio, seed)
    for control, bad in ((head, "7"), (ratio, 3.0), (ratio, "abc"), (ratio, float("nan")), (ratio, True), (seed, -1)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="milan_lab.app"), pytest.raises(gr.Error) as info:
            control.preprocess(bad)
        assert info.value.message.startswith(f"{control.label}:"), (control.label, bad, info.value.message)
        lines = _user_error_lines(caplog)
        assert len(lines) == 1 and lines[0].startswith(f"user error: {control.label}:"), lines
    assert head.preprocess("1") == "1" and ratio.preprocess(0.25) == 0.25 and seed.preprocess(3) == 3


def test_an_unreadable_image_is_one_line_naming_the_file(tmp_path, caplog):
    import gradio as gr
    from gradio.data_classes import ImageData

    from milan_lab.app_guards import check_image_inputs
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"nope")
    image = gr.Image(type="numpy")
    check_image_inputs(image)
    with caplog.at_level(logging.WARNING, logger="milan_lab.app"), pytest.raises(gr.Error, match="not a readable image"):
        image.preprocess(ImageData(path=str(bad)))
    lines = _user_error_lines(caplog)
    assert len(lines) == 1 and "not_an_image.png" in lines[0] and "\n" not in lines[0], lines
