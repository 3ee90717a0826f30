"""The explorer's input guards: what the browser (or an API client) sends is checked here and a bad
value is answered with one line, in the page and in the log, before Gradio's own checks (which say it
with a traceback) and before any handler runs.

The log is ``milan_lab.app``'s, the explorer's own, so that an operator reads every line of the app
in one place.
"""
from __future__ import annotations

import logging
import math

from milan_lab.data.images import load_image
from milan_lab.errors import BadImage

log = logging.getLogger("milan_lab.app")


def user_error(message: str):
    """The error a user sees for their own bad input: one line in the log (no traceback, so an
    operator can tell it from a bug, whose traceback Gradio still prints) and in the page."""
    import gradio as gr
    log.warning("user error: %s", message)
    return gr.Error(message, print_exception=False)


def check_image_inputs(component) -> None:
    """Give an image input the app's own message for unreadable files (the one ``/upload`` gives)
    on every endpoint, instead of Gradio's generic "Could not preprocess input component".

    Wraps the instance's ``preprocess`` rather than subclassing gr.Image: Gradio writes a ``.pyi``
    stub beside the module of every component class it sees defined, which an installed package
    must not do."""
    import gradio as gr
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception:
            try:
                load_image(getattr(payload, "path", None))
            except BadImage as e:
                raise user_error(str(e)) from None
            raise user_error("This file is not a readable image. Try a PNG or JPEG.") from None
    component.preprocess = checked


def check_control_values(*components) -> None:
    """Refuse a value outside a control's choices or range (an API client can send any) with the
    app's one-line user error, naming the control, before Gradio's own check, which says it with a
    traceback in the log. Dropdowns: one of the choices; sliders and numbers: a finite number
    within the bounds. Wraps each instance's ``preprocess``, as :func:`check_image_inputs` does."""
    import gradio as gr
    for component in components:
        preprocess = component.preprocess

        def checked(payload, component=component, preprocess=preprocess):
            if payload is not None:
                problem = (_not_a_choice(component, payload) if isinstance(component, gr.Dropdown)
                           else _out_of_range(component, payload))
                if problem:
                    raise user_error(f"{component.label}: {problem}")
            return preprocess(payload)
        component.preprocess = checked


def _not_a_choice(dropdown, value) -> str | None:
    choices = [v for _, v in dropdown.choices]
    values = value if isinstance(value, list) and dropdown.multiselect else [value]
    bad = [v for v in values if v not in choices]
    return f"{bad[0]!r} is not one of its choices ({', '.join(map(str, choices))})" if bad else None


def _out_of_range(control, value) -> str | None:
    low, high = getattr(control, "minimum", None), getattr(control, "maximum", None)
    bounds = f" in [{low}, {high}]" if low is not None and high is not None else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{value!r} is not a number{bounds}"
    if low is not None and value < low:
        return f"{value} is below its minimum, {low}"
    if high is not None and value > high:
        return f"{value} is above its maximum, {high}"
    return None
