"""The explorer's "Paint a mask" tab: layout and wiring only; the work is ``milan_lab.viz.paint``'s.

The user picks a preset (hide the main object, keep only it, a sampler's mask) or clicks patches of the
mask picture to hide or show them; the model reconstructs from that mask, and the tab shows the
prediction, its cosine error per hidden patch beside the teacher's importance, the loss on the hidden
patches beside the semantic and random samplers' at the same budget, and what it filled in: each hidden
patch as the real patch of a bank of validation scenes nearest to the predicted feature, beside the one
nearest to the true target, with the top-k retrieval accuracy under them.

``app.py`` builds the tab with :func:`paint_tab` inside its tabs and calls the returned ``wire(image,
checked, demo)`` once its image input and its checked-image event exist.
"""
# no __future__ annotations: Gradio finds the click (SelectData) by the annotation object itself
import numpy as np

from milan_lab.app_blocks import MASK_RATIOS, guard_image, titled_image
from milan_lab.data.scenes import COLOURS, SHAPES
from milan_lab.viz import maps, paint

BANK_SCENES = 64  # validation scenes in the patch bank: 4,096 patches at 64 px / 8
WORDS = SHAPES + tuple(COLOURS)  # what the teacher is asked to name a feature by
CAPTIONS = {
    "paint-mask": "Click a patch to hide it (grey) or show it again; the model sees the visible patches only.",
    "paint-pred": "The predicted features of every patch, coloured by the target's first three principal components "
                  "(same colour as the target = same feature).",
    "paint-error": "1 - cosine between prediction and target on each hidden patch, 0 to 1 (above 1 drawn as 1; brighter = worse); "
                   "visible patches are left dark.",
    "paint-importance": "The teacher's class-token attention: what the semantic sampler keeps visible first.",
    "paint-filled-pred": "Each hidden patch replaced by the real patch of a validation scene whose teacher feature "
                         "is nearest to the predicted one.",
    "paint-filled-target": "The same with the true target's feature: what a perfect prediction would show.",
}
_banks: dict = {}


def patch_bank_for(teacher):
    """The patch bank of ``teacher`` (built once per teacher, on first use: a second on CPU)."""
    from milan_lab.evaluation.patch_bank import build_patch_bank
    if id(teacher) not in _banks:
        _banks[id(teacher)] = build_patch_bank(teacher, BANK_SCENES)
    return _banks[id(teacher)]


def paint_outputs(explorer, image, mask, note: str = "") -> list:
    """[mask state, mask picture, prediction, error, importance, loss note, filled from prediction,
    filled from target, filled note] for ``mask`` [L] on ``image``."""
    model = explorer.model
    shown, _ = explorer._views(image, model.cfg.image_size)
    mask = np.asarray(mask, np.float32)
    masked = maps.to_uint8(maps.mask_overlay(shown, mask))
    if mask.sum() == 0 or mask.sum() == len(mask):  # a click can empty or fill the mask: say so, no error
        words = "no patch is hidden: click patches to hide them" if mask.sum() == 0 else \
            "every patch is hidden: the model needs at least one visible patch"
        return [mask.tolist(), masked, None, None, None, f"**{words}**", None, None, ""]
    report = paint.paint_report(model, image, mask)
    panels = paint.paint_panels(report)
    pred = None
    if report["target"] is not None and report["cos_error"] is not None:
        pred = maps.to_uint8(maps.enlarge(maps.pca_rgb(report["target"], report["pred"])[1], 256))
    loss = (f"{note}\n\n" if note else "") + paint.format_losses(report)
    filled = None
    if model.teacher is not None and report["cos_error"] is not None:
        labels = paint.example_patch_labels(image, model.cfg.image_size, model.cfg.patch_size)
        filled = paint.filled_in_view(report, patch_bank_for(model.teacher), model.teacher, labels, words=WORDS)
    image_or_none = lambda a: None if a is None else maps.to_uint8(a)  # noqa: E731
    return [mask.tolist(), masked, pred, image_or_none(panels["error"]), image_or_none(panels["importance"]), loss,
            image_or_none(filled and filled["from_pred"]), image_or_none(filled and filled["from_target"]),
            filled["note"] if filled else "What it filled in is read for feature targets only."]


def preset_outputs(explorer, image, preset, ratio, seed) -> list:
    """:func:`paint_outputs` for a preset's mask. On an image whose main object is unknown (not an
    example scene), an object preset falls back to the semantic sampler's mask and says so."""
    model = explorer.model
    size, patch = model.cfg.image_size, model.cfg.patch_size
    obj = paint.example_object(image, size)
    note = ""
    if preset.endswith("main object") and obj is None:
        preset, note = "semantic sampler", ("The main object is known for the example scenes only: this is the "
                                            "semantic sampler's mask; click patches to change it.")
    importance = None
    if preset == "semantic sampler":
        _, x = explorer._views(image, size)
        importance = model.forward_teacher(x)[1][0]
    mask = paint.preset_mask(preset, model.num_patches, None if obj is None else paint.object_patches(obj, patch),
                             importance, float(ratio), int(seed))
    return paint_outputs(explorer, image, mask, note)


def paint_tab(explorer, user_error, check_control_values):
    """Build the tab's controls and panels (call inside ``gr.Tab``); returns ``wire(image, checked, demo)``."""
    import gradio as gr
    if explorer.model is None:
        gr.Markdown("No MILAN model loaded: pass `--checkpoint FILE_OR_RUN`.")
        return lambda image, checked, demo: None
    gr.Markdown("Pick a preset, or click patches of the mask picture to hide (grey) or show them. The model sees "
                "the visible patches only; its loss on the hidden ones is set beside the semantic and random "
                "samplers' at the same number of hidden patches.")
    with gr.Row():
        preset = gr.Dropdown(list(paint.PRESETS), value=paint.PRESETS[0], label="preset", elem_id="paint-preset")
        ratio = gr.Slider(0.05, MASK_RATIOS[1], value=0.75, step=0.05, label="mask ratio (sampler presets)", elem_id="paint-ratio")
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**32 - 1, label="seed (sampler presets)")
    state = gr.State(None)
    with gr.Row():
        painted, _ = titled_image("your mask", "paint-mask", CAPTIONS["paint-mask"])
        pred, _ = titled_image("prediction (PCA)", "paint-pred", CAPTIONS["paint-pred"])
        error, _ = titled_image("cosine error", "paint-error", CAPTIONS["paint-error"])
        importance, _ = titled_image("teacher's importance", "paint-importance", CAPTIONS["paint-importance"])
    loss = gr.Markdown(elem_id="paint-loss")
    gr.Markdown("**What it filled in.** Each hidden patch shown as the real patch (from validation scenes) whose "
                "teacher feature is nearest to the predicted one, beside the nearest to the true target.")
    with gr.Row():
        from_pred, _ = titled_image("nearest to the prediction", "paint-filled-pred", CAPTIONS["paint-filled-pred"])
        from_target, _ = titled_image("nearest to the true target", "paint-filled-target", CAPTIONS["paint-filled-target"])
    filled = gr.Markdown(elem_id="paint-filled-note")
    outputs = [state, painted, pred, error, importance, loss, from_pred, from_target, filled]
    check_control_values(preset, ratio, seed)

    guarded = guard_image((None,) * len(outputs), user_error)

    @guarded
    def on_preset(image, preset_name, ratio_value, seed_value):
        return preset_outputs(explorer, image, preset_name, ratio_value, seed_value)

    def on_click(image, mask, evt: gr.SelectData):  # not @guarded: Gradio passes the click by this annotation
        mask = np.zeros(explorer.model.num_patches, np.float32) if mask is None else np.asarray(mask, np.float32)
        x, y = evt.index
        return clicked(image, paint.toggle(mask, x, y, paint.DISPLAY, paint.DISPLAY))

    @guarded
    def clicked(image, mask):
        return paint_outputs(explorer, image, mask)

    def wire(image, checked, demo):
        inputs = [image, preset, ratio, seed]
        checked.success(on_preset, inputs, outputs, api_name=False)
        demo.load(on_preset, inputs, outputs, api_name=False)
        preset.change(on_preset, inputs, outputs, api_name="paint_preset")
        ratio.release(on_preset, inputs, outputs, api_name=False)
        seed.change(on_preset, inputs, outputs, api_name=False)
        painted.select(on_click, [image, state], outputs, api_name=False)
    return wire
