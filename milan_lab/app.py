"""The Gradio explorer: layout and wiring only; every handler is a method of
:class:`milan_lab.viz.panels.Explorer` (the ipywidgets notebook calls the same ones).

Kept inside the package (not only in apps/) so that ``milan-lab app`` works from an install;
``apps/explorer.py`` is the script entry point.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from milan_lab.data.scenes import make_scene
from milan_lab.data.images import load_image
from milan_lab.app_blocks import MASK_RATIOS, guard_image, titled_image
from milan_lab.app_guards import check_control_values, check_image_inputs, user_error
from milan_lab.app_paint import paint_tab
from milan_lab.app_timeline import timeline_tab
from milan_lab.app_compare import compare_tab, embedding_tab
from milan_lab.models.losses import target_predicts
from milan_lab.models.masking import SAMPLERS  # the registry, read when the app is built: every registered sampler is offered
from milan_lab.viz import maps, scales
from milan_lab.viz.panels import DISPLAY, EXAMPLE_SCENES, Explorer, example_scene
from milan_lab.viz.text_maps import text_maps_figure, vocabulary_note

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
shapes), upsampled to pixels. Prediction and truth are drawn as outlines in each class's colour,
edged in black, so that a region shows even on an object of its own colour.

Every panel says under it what it shows and what bright means; the maps carry their colour bar,
with the values at its two ends.

Text maps compare each prompt's embedding from the teacher's text tower with patch features.
The first row shows *where* the prompt is: MaskCLIP's dense features of the teacher (Zhou et al.,
2022: the last block's value embeddings through its out-projection and the CLIP head, its attention
skipped), bright on the patches that match the prompt. On labelled scenes it finds the object a
caption names (mean AUROC 0.69 with captions on dense scenes, 0.5 being blind; best with the teacher's own caption
form, "a large purple triangle at the bottom", weaker with "a star"), though not on every scene.
The two rows under it compare the prompt with the target tokens (the teacher's patch features
MILAN predicts) and with their prediction: those tokens do not localise (AUROC below 0.5: they are
often darkest on the object, as CLIP's last-block patch tokens are known to be); side by side they
show how much of the targets' text content the prediction keeps. The figures:
`python benchmarks/text_maps.py` (docs/results.md). With the shipped offline teacher, prompts use
its vocabulary (shapes, colours, sizes, places; listed under the prompt box, and words outside it are
named under the maps);
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


# the words under each panel: what it shows, what bright means
CAPTIONS = {
    "attention-map": "How much the teacher's class token attends to each patch (the chosen layer and head). "
                     "Bright: attended; colours blended over the image.",
    "attention-rollout": "Attention multiplied through all layers (Abnar & Zuidema, 2020), with the residual. "
                         "Bright: patches that reach the class token through the whole network.",
    "student-attention": "The MILAN encoder's own class-token attention, last block. Bright: where the "
                         "student looks; after pretraining more of it falls on the objects than a random encoder's.",
    "random-attention": "The same for a randomly initialised encoder of the same size, the floor: "
                        "nearly uniform, or bright where the image itself is.",
    "mask": "Bright: patches the encoder sees; grey: patches removed, whose features the model must predict.",
    "rec-masked": "What the encoder sees: the visible patches; grey ones are removed.",
    "rec-target": "The teacher's feature of each patch, its 3 main directions shown as RGB (one basis for "
                  "both maps): similar colour = similar feature.",
    "rec-pred": "The MILAN model's prediction of those features, on the same basis: a good prediction "
                "looks like the target.",
    "rec-cos": "Cosine of predicted and target feature per patch. Bright: close to the target. "
               "Hatched: visible patches (given to the decoder as prompts); plain: masked, predicted.",
    "rec-pixels": "The model's pixels for every patch (a pixel-target model, MAE's loss).",
    "rec-pasted": "The visible patches as given, the removed ones filled with the model's pixels.",
    "rec-text": "Top row, where: each prompt against the teacher's MaskCLIP features (bright: the patches "
                "that match the prompt; it finds a captioned object on most scenes, not all). Below: the prompt "
                "against the target tokens and their prediction, which do not localise (often darkest on the "
                "object): compare the two rows to see what the prediction keeps.",
    "segmentation": "The dense probe's class for each patch, drawn as outlines (colour = class, see the key); "
                    "the image inside is left as it is.",
    "segmentation-truth": "The scene's true labels, drawn the same way (known for the example scenes only).",
}
NO_IMAGE = "**No image.** Pick an example below, or drop a PNG or JPEG on the image area."
# the name of the file shown, read in the browser (the server gets the pixels only)
FILE_NAME_JS = "(img) => img && img.orig_name ? 'File: `' + img.orig_name + '`' : ''"
APP_CSS = """
.panel-title p { margin: 0 0 2px 0; font-weight: 600; }
.panel-caption p { margin: 2px 0 0 0; font-size: 0.85em; opacity: 0.85; line-height: 1.3; }
"""


def header(explorer: Explorer) -> str:
    """The page's first lines: what this is, and which teacher and model it runs."""
    d = explorer.describe()
    model = f"`{d['model']}` ({d['model_detail']})" if d["model"] else "none (pass `--checkpoint FILE_OR_RUN`)"
    return (f"# MILAN explorer\nWhat a MILAN model sees, masks and predicts.  \n**Teacher:** `{d['teacher']}` "
            f"({d['teacher_detail']}) · **MILAN model:** {model}.  \nThe four offline example scenes suit the shipped "
            "teacher; the photos need a real CLIP teacher to be meaningful.")


def no_probe_note(explorer: Explorer) -> str:
    """What the Segmentation tab says when the model has no dense probe: the command that makes one."""
    if explorer.model is None:
        return "No MILAN model loaded, so no dense probe: pass `--checkpoint FILE_OR_RUN`."
    return (f"**No dense probe for this model yet.** Make one with `milan-lab seg-probe {explorer.model_source}` "
            "(it trains a linear probe on the offline scenes and saves it where the app looks), then restart the app.")


def build_app(explorer: Explorer):
    import gradio as gr

    def guard(*empty):
        """Handlers: see :func:`milan_lab.app_blocks.guard_image`."""
        return guard_image(empty, user_error)

    n_layers = explorer.num_layers
    n_heads = explorer.teacher.num_heads
    n_student_heads = explorer.model.encoder.num_heads if explorer.model is not None else 1
    pixel_model = explorer.model is not None and target_predicts(explorer.model.cfg) == "pixels"

    def on_image(image):
        """The one line under the image: what is shown, or the hint when nothing is."""
        if image is None:
            return NO_IMAGE
        key = example_scene(image)
        if key is not None:
            return (f"Example scene {EXAMPLE_SCENES.index(key) + 1} of {len(EXAMPLE_SCENES)} (offline, "
                    "generated: its ground truth is known).")
        h, w = np.asarray(image).shape[:2]
        return f"Your image, {w}x{h} px (centre-cropped to a square for the model)."

    @guard(None, None)
    def on_attention(image, layer, head):
        r = explorer.attention(image, int(layer), None if head == "mean" else int(head), rollout=True)
        imp, roll = r["importance"], r["rollout_values"]
        return (scales.with_scale(r["map"], imp.min(), imp.max(), "inferno", "attention weight"),
                scales.with_scale(r["rollout"], roll.min(), roll.max(), "inferno", "rollout weight"))

    @guard(None, None, "")
    def on_student(image, head):
        if explorer.model is None:
            return None, None, "No MILAN model loaded."
        r = explorer.student_attention(image, None if head == "mean" else int(head))
        agree = r["agreement"]
        note = ("Correlation with the teacher's map over patches: " + ", ".join(
            f"{k} {v:+.2f}" for k, v in agree.items() if v is not None)) if agree["student"] is not None else ""
        shown = [scales.with_scale(r[k], r["values"][k].min(), r["values"][k].max(), "inferno", "attention weight")
                 for k in ("student", "random")]
        return shown[0], shown[1], note

    @guard(None, None, "", "")
    def on_segment(image):
        r = explorer.segmentation(image)
        if r is None:
            return None, None, "", no_probe_note(explorer)
        note = "Predicted: " + ", ".join(r["present"])
        if "truth" not in r:
            return maps.to_uint8(r["overlay"]), None, r["legend"], note + " (ground truth is known for the example scenes only)"
        ious = ", ".join(f"{c} {100 * v:.0f} %" for c, v in r["iou"].items())
        note += f". On this image: mIoU {100 * r['miou']:.1f} % over the classes in the truth or the prediction ({ious})."
        return maps.to_uint8(r["overlay"]), maps.to_uint8(r["truth_overlay"]), r["legend"], note

    @guard(None, None, "")
    def on_masks(image, sampler_a, sampler_b, ratio, seed):
        a = explorer.masks(image, sampler_a, ratio, seed)
        b = explorer.masks(image, sampler_b, ratio, seed)
        note = (f"{sampler_a}: visible patches hold {100 * a['kept_attention']:.0f} % of the teacher's attention; "
                f"{sampler_b}: {100 * b['kept_attention']:.0f} % (mask ratio {ratio:.2f}, seed {int(seed)}).")
        return maps.to_uint8(a["overlay"]), maps.to_uint8(b["overlay"]), note

    @guard(None, None, None, None, None, "")
    def on_reconstruct(image, sampler, ratio, seed, prompts):
        texts = [t.strip() for t in (prompts or "").split(",") if t.strip()]
        r = explorer.reconstruction(image, sampler, ratio, seed, texts)
        if r.get("cosine") is None:  # pixel-target model
            return (maps.to_uint8(r["masked_input"]), maps.to_uint8(maps.enlarge(r["pixels"], 256)),
                    maps.to_uint8(maps.enlarge(r["pasted"], 256)), None, None, "pixel reconstruction (MAE target)")
        text_img = text_maps_figure(r["prompts"], r["text_dense"], r["text_target"], r["text_pred"]) if texts else None
        note = f"mean cosine to the target: masked patches {r['cos_masked']:.3f}"
        if r["cos_visible"] is not None:
            note += f", visible patches {r['cos_visible']:.3f}"
        if texts and r["unknown_words"]:  # each word once, under the text maps
            note += f". Text prompts: {r['unknown_words']} (read as <unk>)"
        lo, hi = r["cosine_range"]
        return (maps.to_uint8(r["masked_input"]), maps.to_uint8(maps.enlarge(r["pca_target"], 256)),
                maps.to_uint8(maps.enlarge(r["pca_pred"], 256)),
                scales.with_scale(r["cosine"], lo, hi, "viridis", "cosine to target"), text_img, note)

    def mask_title(sampler):
        return f"**{sampler}** sampler"

    def panel(title: str, elem_id: str, caption: str | None = None, min_width: int = 200):
        """One output image with its title above and its caption under it (``app_blocks.titled_image``).
        Returns (image, title Markdown)."""
        return titled_image(title, elem_id, caption or CAPTIONS[elem_id], min_width)

    examples = example_images(Path(tempfile.gettempdir()) / "milan_lab_examples")
    with gr.Blocks(title="milan-lab explorer") as demo:
        gr.Markdown(header(explorer), elem_id="header")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                image = gr.Image(label="Image: drop a file here, or pick an example", type="numpy",
                                 value=examples[0], elem_id="input-image", sources=["upload", "clipboard"], height=300)
                check_image_inputs(image)
                file_name = gr.Markdown(f"File: `{Path(examples[0]).name}`", elem_id="image-name")
                image_info = gr.Markdown(on_image(np.asarray(load_image(examples[0]))), elem_id="image-info")
                gr.Examples(examples=[[p] for p in examples], inputs=[image], label="Examples", elem_id="examples")
            with gr.Column(scale=3, min_width=480):
                with gr.Tab("Attention"):
                    with gr.Row():
                        layer = gr.Slider(0, n_layers - 1, value=n_layers - 1, step=1, label="teacher layer",
                                          info=f"{n_layers} layers: 0 is the first, {n_layers - 1} the last")
                        head = gr.Dropdown(["mean"] + [str(h) for h in range(n_heads)], value="mean",
                                           label="teacher head", info=f"{n_heads} heads, or their mean")
                    with gr.Row():
                        att_map, _ = panel("teacher: class-token attention", "attention-map")
                        att_roll, _ = panel("teacher: attention rollout", "attention-rollout")
                    with gr.Row():
                        stu_head = gr.Dropdown(["mean"] + [str(h) for h in range(n_student_heads)], value="mean",
                                               label="student head", info=f"{n_student_heads} heads, or their mean")
                    with gr.Row():
                        stu_map, _ = panel("student (MILAN encoder)", "student-attention")
                        rnd_map, _ = panel("random encoder", "random-attention")
                    stu_note = gr.Markdown()
                with gr.Tab("Masks"):
                    with gr.Row():
                        sampler_a = gr.Dropdown(SAMPLERS, value="semantic", label="sampler A", elem_id="sampler-a")
                        sampler_b = gr.Dropdown(SAMPLERS, value="random", label="sampler B", elem_id="sampler-b")
                        ratio = gr.Slider(*MASK_RATIOS, value=0.75, step=0.05, label="mask ratio", elem_id="ratio")
                        seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**32 - 1, label="seed")
                    with gr.Row():
                        mask_a, mask_a_title = panel(mask_title("semantic"), "mask-a", CAPTIONS["mask"])
                        mask_b, mask_b_title = panel(mask_title("random"), "mask-b", CAPTIONS["mask"])
                    mask_note = gr.Markdown(elem_id="mask-note")
                with gr.Tab("Reconstruction"):
                    with gr.Row():
                        rec_sampler = gr.Dropdown(SAMPLERS, value="semantic", label="sampler")
                        rec_ratio = gr.Slider(*MASK_RATIOS, value=0.75, step=0.05, label="mask ratio", elem_id="rec-ratio")
                        rec_seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**32 - 1, label="seed",
                                             elem_id="rec-seed")
                    # the teacher whose text tower reads the prompts: the model's, else the explorer's
                    rec_teacher = explorer.teacher if explorer.model is None else explorer.model.teacher
                    prompts = gr.Textbox(value=DEFAULT_PROMPTS, label="text prompts (comma separated)",
                                         info=vocabulary_note(rec_teacher), elem_id="prompts")
                    with gr.Row():
                        rec_masked, _ = panel("masked input", "rec-masked", min_width=200)
                        if pixel_model:
                            rec_target, _ = panel("predicted pixels", "rec-target", CAPTIONS["rec-pixels"], 200)
                            rec_pred, _ = panel("visible + predicted", "rec-pred", CAPTIONS["rec-pasted"], 200)
                        else:
                            rec_target, _ = panel("target (PCA)", "rec-target", min_width=200)
                            rec_pred, _ = panel("prediction (PCA)", "rec-pred", min_width=200)
                        rec_cos, _ = panel("cosine per patch", "rec-cos", min_width=200)
                    rec_text, _ = panel("text prompts: where (MaskCLIP), target tokens, prediction", "rec-text")
                    rec_note = gr.Markdown()
                with gr.Tab("Paint a mask"):
                    wire_paint = paint_tab(explorer, user_error, check_control_values)
                with gr.Tab("Timeline"):
                    wire_timeline = timeline_tab(explorer, user_error, check_control_values)
                with gr.Tab("Segmentation"):
                    gr.Markdown("A linear probe on the frozen encoder's patch tokens (the dense-probe protocol): "
                                "each pixel's class among background and the eight shapes.")
                    if not explorer.has_probe:
                        gr.Markdown(no_probe_note(explorer), elem_id="no-probe")
                    with gr.Row():
                        seg_map, _ = panel("dense probe prediction", "segmentation")
                        seg_truth, _ = panel("ground truth (example scenes)", "segmentation-truth")
                    seg_legend = gr.HTML(maps.legend_html(explorer._probe[1]) if explorer.has_probe else "",
                                         elem_id="segmentation-legend")
                    seg_note = gr.Markdown(elem_id="segmentation-note")
                # after Segmentation: the tabs a narrow page folds into its menu are the last ones
                with gr.Tab("Compare models"):
                    wire_compare = compare_tab(explorer, user_error, check_control_values)
                with gr.Tab("Embedding"):
                    wire_embedding = embedding_tab(explorer, user_error, check_control_values)
                with gr.Tab("About"):
                    gr.Markdown(about_text())

        att_in, att_out = [image, layer, head], [att_map, att_roll]
        mask_in, mask_out = [image, sampler_a, sampler_b, ratio, seed], [mask_a, mask_b, mask_note]
        rec_in = [image, rec_sampler, rec_ratio, rec_seed, prompts]
        rec_out = [rec_masked, rec_target, rec_pred, rec_cos, rec_text, rec_note]
        stu_in, stu_out = [image, stu_head], [stu_map, rnd_map, stu_note]
        check_control_values(layer, head, stu_head, sampler_a, sampler_b, ratio, seed, rec_sampler, rec_ratio, rec_seed)
        seg_out = [seg_map, seg_truth, seg_legend, seg_note]
        # a new image is checked once, as every endpoint checks it (API: "/upload"), and said what it
        # is; the panels follow only when it is readable, so a bad file is one message, not one per panel
        checked = image.change(on_image, [image], [image_info], api_name="upload")
        image.change(None, [image], [file_name], js=FILE_NAME_JS)
        panels = [(on_attention, att_in, att_out), (on_masks, mask_in, mask_out), (on_reconstruct, rec_in, rec_out),
                  (on_student, stu_in, stu_out), (on_segment, [image], seg_out)]
        for fn, inputs, outputs in panels:
            checked.success(fn, inputs, outputs, api_name=False)
            demo.load(fn, inputs, outputs, api_name=False)
        every_output = [o for _, _, outputs in panels for o in outputs]
        checked.failure(lambda: [None if isinstance(o, gr.Image) else "" for o in every_output], None, every_output,
                        api_name=False)  # no panel keeps showing the image before the bad one
        wire_paint(image, checked, demo)
        wire_timeline(image, checked, demo)
        wire_compare(image, checked, demo)
        wire_embedding(image, checked, demo)
        stu_head.change(on_student, stu_in, stu_out, api_name="student_attention")
        image.upload(on_segment, [image], seg_out, api_name="segmentation")
        layer.release(on_attention, att_in, att_out, api_name="attention")
        head.change(on_attention, att_in, att_out, api_name=False)
        sampler_a.change(mask_title, [sampler_a], [mask_a_title], api_name=False)
        sampler_b.change(mask_title, [sampler_b], [mask_b_title], api_name=False)
        for comp in (sampler_a, sampler_b, seed):
            comp.change(on_masks, mask_in, mask_out, api_name=False)
        ratio.release(on_masks, mask_in, mask_out, api_name="masks")
        rec_ratio.release(on_reconstruct, rec_in, rec_out, api_name="reconstruct")
        for comp in (rec_sampler, rec_seed, prompts):
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
    demo.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, show_error=True,
                css=APP_CSS)
    return demo
