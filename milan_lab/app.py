"""The Gradio explorer: layout and wiring only; every handler is a method of
:class:`milan_lab.viz.panels.Explorer` (the ipywidgets notebook calls the same ones).

Kept inside the package (not only in apps/) so that ``milan-lab app`` works from an install;
``apps/explorer.py`` is the script entry point.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from milan_lab.data.scenes import make_scene
from milan_lab.data.images import load_image
from milan_lab.errors import BadImage, MilanLabError
from milan_lab.models.masking import SAMPLERS  # the registry, read when the app is built: every registered sampler is offered
from milan_lab.viz import maps
from milan_lab.viz.panels import DISPLAY, EXAMPLE_SCENES, Explorer
from milan_lab.viz.plots import text_maps_image

log = logging.getLogger("milan_lab.app")


def user_error(message: str):
    """The error a user sees for their own bad input: one line in the log (no traceback, so an
    operator can tell it from a bug, whose traceback Gradio still prints) and in the page."""
    import gradio as gr
    log.warning("user error: %s", message)
    return gr.Error(message, print_exception=False)
DEFAULT_PROMPTS = "a star, a circle, a square"
ABOUT = """
**Attention.** The frozen CLIP teacher's class-token attention over the image patches (last
block by default). MILAN samples visible patches in proportion to it: attention is what makes
masking *semantic*. Rollout multiplies attention through all layers (Abnar & Zuidema, 2020).

Below it, the *student's* own class-token attention (the MILAN encoder's last block, as DINO
shows it) beside a randomly initialised encoder of the same size: pretraining on CLIP targets
teaches the student to look where the teacher looks; the note gives the correlation of each map
with the teacher's.

**Masks.** Which patches each sampler keeps visible (bright) and removes (grey):
<samplers>

**Reconstruction.** The MILAN model sees only the visible patches and predicts the teacher's
features for every patch. Left to right: the masked input, the teacher's features and the
prediction projected to RGB with one shared PCA basis (similar colours = similar features), and
the per-patch cosine similarity (hatched = visible patches, given to the decoder as prompts).
**Segmentation.** A linear classifier per patch token of the frozen encoder, trained by
`milan-lab seg-probe CHECKPOINT` on offline scenes with their label maps (background and eight
shapes), upsampled to pixels.

Text maps compare each prompt with the target and predicted features through the teacher's text
tower. With the shipped offline teacher, prompts use its vocabulary (shapes, colours, places);
real photos are meaningful only with a real CLIP teacher (`milan-lab app --teacher ViT-B-16
--teacher-pretrained openai`).
"""


def about_text() -> str:
    """The About tab's text, with one line per registered sampler (its help), read when the app is built."""
    return ABOUT.replace("<samplers>", "\n".join(f"- *{e.name}*: {e.help}" for e in SAMPLERS.values()))


def example_images(folder: Path) -> list[str]:
    """Offline scenes plus real photos shipped inside installed packages."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, split, i in EXAMPLE_SCENES:
        p = folder / f"scene_{i}.png"
        if not p.exists():
            Image.fromarray(make_scene(seed, split, i, DISPLAY)[0]).save(p)
        paths.append(str(p))
    try:
        from skimage import data
        for name in ("astronaut", "chelsea", "coffee"):
            p = folder / f"{name}.png"
            if not p.exists():
                Image.fromarray(getattr(data, name)()).save(p)
            paths.append(str(p))
    except Exception:  # scikit-image is a dependency; keep the app usable without it anyway
        pass
    try:
        import matplotlib.cbook as cbook
        p = folder / "grace_hopper.png"
        if not p.exists():
            with cbook.get_sample_data("grace_hopper.jpg") as f:
                Image.open(f).convert("RGB").save(p)
        paths.append(str(p))
    except Exception:
        pass
    return paths


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


def build_app(explorer: Explorer):
    import gradio as gr

    def guard(fn):
        def wrapped(*args):
            try:
                return fn(*args)
            except MilanLabError as e:
                raise user_error(str(e)) from None
        wrapped.__name__ = fn.__name__
        return wrapped

    n_layers = explorer.num_layers
    n_heads = explorer.teacher.num_heads
    n_student_heads = explorer.model.encoder.num_heads if explorer.model is not None else 1

    @guard
    def on_upload(file):
        if file is None:
            raise BadImage("No file uploaded.")
        return np.asarray(load_image(file if isinstance(file, str) else file.name))

    @guard
    def on_attention(image, layer, head):
        r = explorer.attention(image, int(layer), None if head == "mean" else int(head), rollout=True)
        return maps.to_uint8(r["map"]), maps.to_uint8(r["rollout"])

    @guard
    def on_student(image, head):
        if explorer.model is None:
            return None, None, "No MILAN model loaded."
        r = explorer.student_attention(image, None if head == "mean" else int(head))
        agree = r["agreement"]
        note = ("Correlation with the teacher's map over patches: " + ", ".join(
            f"{k} {v:+.2f}" for k, v in agree.items() if v is not None)) if agree["student"] is not None else ""
        return maps.to_uint8(r["student"]), maps.to_uint8(r["random"]), note

    @guard
    def on_segment(image):
        r = explorer.segmentation(image)
        if r is None:
            return None, None, "", ("No dense probe for this model yet: run `milan-lab seg-probe CHECKPOINT` "
                                    "(it saves one for the model), then restart the app.")
        note = "Predicted: " + ", ".join(r["present"])
        if "truth" not in r:
            return maps.to_uint8(r["overlay"]), None, r["legend"], note + " (ground truth is known for the example scenes only)"
        ious = ", ".join(f"{c} {100 * v:.0f} %" for c, v in r["iou"].items())
        note += f". On this image: mIoU {100 * r['miou']:.1f} % over the classes in the truth or the prediction ({ious})."
        return maps.to_uint8(r["overlay"]), maps.to_uint8(r["truth_overlay"]), r["legend"], note

    @guard
    def on_masks(image, sampler_a, sampler_b, ratio, seed):
        a = explorer.masks(image, sampler_a, ratio, seed)
        b = explorer.masks(image, sampler_b, ratio, seed)
        note = (f"{sampler_a}: visible patches hold {100 * a['kept_attention']:.0f} % of the teacher's attention; "
                f"{sampler_b}: {100 * b['kept_attention']:.0f} % (mask ratio {ratio:.2f}, seed {int(seed)}).")
        return maps.to_uint8(a["overlay"]), maps.to_uint8(b["overlay"]), note

    @guard
    def on_reconstruct(image, sampler, ratio, seed, prompts):
        texts = [t.strip() for t in (prompts or "").split(",") if t.strip()]
        r = explorer.reconstruction(image, sampler, ratio, seed, texts)
        if r.get("cosine") is None:  # pixel-target model
            return (maps.to_uint8(r["masked_input"]), maps.to_uint8(maps.enlarge(r["pixels"], 256)),
                    maps.to_uint8(maps.enlarge(r["pasted"], 256)), None, None, "pixel reconstruction (MAE target)")
        text_img = text_maps_image(r["prompts"], r["text_target"], r["text_pred"], r["mask"]) if texts else None
        note = f"mean cosine to the target: masked patches {r['cos_masked']:.3f}"
        if r["cos_visible"] is not None:
            note += f", visible patches {r['cos_visible']:.3f}"
        return (maps.to_uint8(r["masked_input"]), maps.to_uint8(maps.enlarge(r["pca_target"], 256)),
                maps.to_uint8(maps.enlarge(r["pca_pred"], 256)), maps.to_uint8(r["cosine"]), text_img, note)

    def image_row(*panels):
        """One row of output images, each (label, elem_id)."""
        with gr.Row():
            return [gr.Image(label=label, elem_id=elem_id) for label, elem_id in panels]

    examples = example_images(Path(tempfile.gettempdir()) / "milan_lab_examples")
    with gr.Blocks(title="milan-lab explorer") as demo:
        gr.Markdown(f"# MILAN explorer\nTeacher: `{explorer.teacher.name}` · MILAN model: "
                    f"`{'loaded' if explorer.model is not None else 'none'}`. Offline scenes suit the shipped "
                    "teacher; the real photos need a real CLIP teacher to be meaningful.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Image", type="numpy", value=examples[0], elem_id="input-image")
                check_image_inputs(image)
                upload = gr.File(label="…or upload any file (checked before use)", file_types=None,
                                 elem_id="file-upload")
                gr.Examples(examples=[[p] for p in examples], inputs=[image], label="Examples")
            with gr.Column(scale=2):
                with gr.Tab("Attention"):
                    with gr.Row():
                        layer = gr.Slider(-1, n_layers - 1, value=-1, step=1, label="layer (-1 = last)")
                        head = gr.Dropdown(["mean"] + [str(h) for h in range(n_heads)], value="mean", label="head")
                    att_map, att_roll = image_row(("teacher: class-token attention", "attention-map"),
                                                  ("teacher: attention rollout", "attention-rollout"))
                    gr.Markdown("The MILAN student's own class-token attention (last block, DINO's view), and a "
                                "randomly initialised encoder's: after pretraining, the student looks where CLIP looks.")
                    with gr.Row():
                        stu_head = gr.Dropdown(["mean"] + [str(h) for h in range(n_student_heads)], value="mean",
                                               label="student head")
                    stu_map, rnd_map = image_row(("student (MILAN encoder)", "student-attention"),
                                                 ("random encoder", "random-attention"))
                    stu_note = gr.Markdown()
                with gr.Tab("Masks"):
                    with gr.Row():
                        sampler_a = gr.Dropdown(SAMPLERS, value="semantic", label="sampler A")
                        sampler_b = gr.Dropdown(SAMPLERS, value="random", label="sampler B")
                        ratio = gr.Slider(0.0, 0.95, value=0.75, step=0.05, label="mask ratio", elem_id="ratio")
                        seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**32 - 1, label="seed")
                    mask_a, mask_b = image_row(("sampler A", "mask-a"), ("sampler B", "mask-b"))
                    mask_note = gr.Markdown()
                with gr.Tab("Reconstruction"):
                    with gr.Row():
                        rec_sampler = gr.Dropdown(SAMPLERS, value="semantic", label="sampler")
                        prompts = gr.Textbox(value=DEFAULT_PROMPTS, label="text prompts (comma separated)")
                    rec_masked, rec_target, rec_pred, rec_cos = image_row(
                        ("masked input", "rec-masked"), ("target features (PCA)", "rec-target"),
                        ("predicted features (PCA)", "rec-pred"), ("cosine per patch", "rec-cos"))
                    rec_text = gr.Image(label="text-prompt similarity: target vs prediction", elem_id="rec-text")
                    rec_note = gr.Markdown()
                with gr.Tab("Segmentation"):
                    gr.Markdown("A linear probe on the frozen encoder's patch tokens (the dense-probe protocol): "
                                "each pixel's class among background and the eight shapes.")
                    seg_map, seg_truth = image_row(("dense probe prediction", "segmentation"),
                                                   ("ground truth (example scenes)", "segmentation-truth"))
                    seg_legend = gr.HTML(elem_id="segmentation-legend")
                    seg_note = gr.Markdown()
                with gr.Tab("About"):
                    gr.Markdown(about_text())

        att_in, att_out = [image, layer, head], [att_map, att_roll]
        mask_in, mask_out = [image, sampler_a, sampler_b, ratio, seed], [mask_a, mask_b, mask_note]
        rec_in = [image, rec_sampler, ratio, seed, prompts]
        rec_out = [rec_masked, rec_target, rec_pred, rec_cos, rec_text, rec_note]
        stu_in, stu_out = [image, stu_head], [stu_map, rnd_map, stu_note]
        check_control_values(layer, head, stu_head, sampler_a, sampler_b, ratio, seed, rec_sampler)
        seg_out = [seg_map, seg_truth, seg_legend, seg_note]
        upload.upload(on_upload, [upload], [image], api_name="upload")
        for trigger in (image.change, demo.load):
            trigger(on_attention, att_in, att_out, api_name=False)
            trigger(on_masks, mask_in, mask_out, api_name=False)
            trigger(on_reconstruct, rec_in, rec_out, api_name=False)
            trigger(on_student, stu_in, stu_out, api_name=False)
            trigger(on_segment, [image], seg_out, api_name=False)
        stu_head.change(on_student, stu_in, stu_out, api_name="student_attention")
        image.upload(on_segment, [image], seg_out, api_name="segmentation")
        layer.release(on_attention, att_in, att_out, api_name="attention")
        head.change(on_attention, att_in, att_out, api_name=False)
        for comp in (sampler_a, sampler_b, seed):
            comp.change(on_masks, mask_in, mask_out, api_name=False)
        ratio.release(on_masks, mask_in, mask_out, api_name="masks")
        ratio.release(on_reconstruct, rec_in, rec_out, api_name="reconstruct")
        for comp in (rec_sampler, prompts):
            comp.change(on_reconstruct, rec_in, rec_out, api_name=False)
    demo.queue(default_concurrency_limit=2, max_size=32)
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, teacher: str | None = None,
           teacher_pretrained: str | None = None, checkpoint: str | None = None, block: bool = True):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not logging.getLogger().handlers:  # one line per user error on the console, beside Gradio's own output
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    explorer = Explorer.from_defaults(teacher, teacher_pretrained, checkpoint)
    demo = build_app(explorer)
    demo.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, show_error=True)
    return demo
