"""The explorer's "Compare models" and "Embedding" tabs: layout and wiring, over the Explorer's and the
viz layer's functions.

Compare models: two models (the shipped one, the app's ``--checkpoint`` one, a random init of the app
model's architecture) reconstruct the same image from the same mask (a sampler, a ratio and a seed, drawn
once from model A's teacher attention): each one's prediction on one PCA basis (the first model's target),
its cosine error per hidden patch on one fixed scale, its loss on the hidden patches
(``viz.paint.paint_report``) and its student attention.

Embedding: ``tools.embed.embed``'s class-token and mean-patch embeddings of validation scenes beside a
random encoder's, with the 2-D kNN accuracy under them; computed when the button is pressed, cached per
(model, method).

``app.py`` builds each tab inside its tabs (:func:`compare_tab`, :func:`embedding_tab`) and calls the
returned ``wire(image, checked, demo)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from milan_lab.app_blocks import MASK_RATIOS, titled_image
from milan_lab.errors import ConfigError, MilanLabError
from milan_lab.models.masking import SAMPLERS, sample_mask
from milan_lab.viz import maps, paint, scales
from milan_lab.viz.panels import SHIPPED_MODEL, Explorer, load_milan

SHIPPED, YOURS, RANDOM = "shipped", "yours", "random init"
EMBED_SCENES = 256  # validation scenes of the embedding tab (the encoder and a random one each see all of them)
CAPTIONS = {
    "compare-masked": "The image with the mask both models get: bright patches are seen, grey ones hidden.",
    "compare-target": "The teacher's feature of each patch, its 3 main directions as RGB: the basis both "
                      "predictions are drawn on.",
    "compare-pred": "This model's predicted features on that same basis: closer to the target's colours = better.",
    "compare-error": "1 - cosine between prediction and target per hidden patch, on one scale for both models "
                     "(0 to 1, values above 1, i.e. pointing away from the target, drawn as 1; brighter = worse); "
                     "visible patches left dark.",
    "compare-attention": "This model's class-token attention, last block, head mean. Bright: where its encoder looks.",
    "embed-figure": "Each dot a validation scene, coloured by its main object's shape; each panel its own 2-D fit. "
                    "Shapes in separate clouds: the encoder tells them apart.",
}


def model_choices(explorer: Explorer) -> list[str]:
    """The models the tabs offer: 'shipped', 'yours' (when the app was started with a ``--checkpoint``
    other than the shipped model) and 'random init' (of the app model's architecture)."""
    choices = [SHIPPED] if SHIPPED_MODEL.is_file() else []
    source = explorer.model_source
    if explorer.model is not None and source and Path(source).resolve() != SHIPPED_MODEL.resolve():
        choices.append(YOURS)
    return choices + [RANDOM] if explorer.model is not None else choices


class Models:
    """The compared models, each built once, on first use: the shipped model with the app's teacher,
    the app's own, and a random init (seed 0) of the app model's architecture with its teacher."""

    def __init__(self, explorer: Explorer):
        self.explorer, self._built = explorer, {}

    def get(self, name: str):
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    def _build(self, name: str):
        from milan_lab.factory.models import create_model
        own = self.explorer.model
        if name == SHIPPED:
            shipped = own is not None and Path(getattr(own, "checkpoint_path", "") or "").resolve() == SHIPPED_MODEL.resolve()
            return own if shipped else load_milan(None, self.explorer.teacher).eval()
        if name == YOURS and own is not None:
            return own
        if name == RANDOM and own is not None:
            return create_model(own.cfg, "pretrain", teacher=own.teacher, seed=0).eval()
        raise ConfigError(f"model must be one of {', '.join(model_choices(self.explorer))}, got {name!r}")

    def checkpoint(self, name: str) -> str:
        """What ``tools.embed.embed`` takes for ``name``: 'shipped' or the app's checkpoint."""
        return "shipped" if name == SHIPPED else str(self.explorer.model_source)


def shared_mask(model, image, sampler: str, ratio: float, seed: int) -> np.ndarray:
    """[L] mask (1 = hidden) of ``sampler`` at ``ratio`` drawn with ``seed`` from ``model``'s teacher attention."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    _, x = Explorer._views(image, model.cfg.image_size)
    importance = model.forward_teacher(x)[1]
    if SAMPLERS.lookup(sampler).needs_teacher and importance is None:
        raise ConfigError(f"the {sampler} sampler draws from the teacher's attention, and this model has no teacher: "
                          "pick the random sampler")
    m = sample_mask(sampler, float(ratio), 1, model.num_patches, importance,
                    generator=torch.Generator().manual_seed(int(seed)))
    return m.mask[0].numpy().astype(np.float32)


@torch.no_grad()
def student_attention_map(model, shown: np.ndarray, x: torch.Tensor) -> np.ndarray:
    """The encoder's class-token attention (last block, head mean) over ``shown`` [DISPLAY, DISPLAY, 3]."""
    return maps.heatmap(shown, maps.cls_attention(model.encoder.get_last_selfattention(x)[0]))


@torch.no_grad()
def compare_models(model_a, model_b, image, sampler: str = "semantic", ratio: float = 0.75, seed: int = 0) -> dict:
    """Both models on ``image`` with one mask (:func:`shared_mask`, from model A's teacher). Returns
    {'mask' [L], 'masked', 'target' (PCA image of A's target, or None for pixel targets), 'models': [per
    model {'loss', 'pred' (PCA image on A's target basis, or None), 'error' (1 - cos per patch on the 0-1
    scale, or None), 'cos_error' [L], 'attention'}], 'hidden'}: display images [DISPLAY, DISPLAY, 3] in [0, 1]."""
    if model_a.num_patches != model_b.num_patches:
        raise ConfigError(f"the two models see different patch grids ({model_a.num_patches} and {model_b.num_patches} "
                          "patches): one mask cannot be given to both")
    mask = shared_mask(model_a, image, sampler, ratio, seed)
    reports = [paint.paint_report(m, image, mask, draws=1, seed=int(seed)) for m in (model_a, model_b)]
    basis = reports[0]["target"]
    out = {"mask": mask, "hidden": reports[0]["hidden"], "masked": paint.paint_panels(reports[0])["masked"],
           "target": None, "models": []}
    if basis is not None:
        out["target"] = maps.enlarge(maps.pca_rgb(basis, basis)[0], paint.DISPLAY)
    for model, r in zip((model_a, model_b), reports):
        entry = {"loss": r["loss"], "pred": None, "error": None, "cos_error": r["cos_error"],
                 "attention": student_attention_map(model, r["shown"], r["x"])}
        if r["cos_error"] is not None:  # feature targets: drawn on the first model's basis when the dims agree
            if basis is not None and r["pred"].shape[-1] == basis.shape[-1]:
                entry["pred"] = maps.enlarge(maps.pca_rgb(basis, r["pred"])[1], paint.DISPLAY)
            entry["error"] = paint.paint_panels(r)["error"]  # paint.error_map: a fixed 0-1 scale, the same for both
        out["models"].append(entry)
    return out


def format_compare_losses(names: list[str], result: dict) -> str:
    """One line: each model's loss on the hidden patches of the shared mask."""
    losses = ", ".join(f"**{n}** {m['loss']:.3f}" for n, m in zip(names, result["models"]))
    return f"loss on the {result['hidden']} hidden patches, same mask for both: {losses}"


def compare_tab(explorer: Explorer, user_error, check_control_values):
    """Build the "Compare models" tab (call inside ``gr.Tab``); returns ``wire(image, checked, demo)``."""
    import gradio as gr
    choices = model_choices(explorer)
    if RANDOM not in choices:
        gr.Markdown("No MILAN model loaded: pass `--checkpoint FILE_OR_RUN`.")
        return lambda image, checked, demo: None
    models = Models(explorer)
    gr.Markdown("Two models reconstruct the same image from the same mask (drawn once, from model A's teacher "
                "attention). Predictions share one colour basis and errors one scale, so the panels compare.")
    with gr.Row():
        model_a = gr.Dropdown(choices, value=YOURS if YOURS in choices else choices[0], label="model A", elem_id="compare-a")
        model_b = gr.Dropdown(choices, value=RANDOM, label="model B", elem_id="compare-b")
        sampler = gr.Dropdown(list(SAMPLERS), value=next(iter(SAMPLERS)), label="sampler", elem_id="compare-sampler")
        ratio = gr.Slider(0.05, MASK_RATIOS[1], value=0.75, step=0.05, label="mask ratio", elem_id="compare-ratio")
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**32 - 1, label="seed", elem_id="compare-seed")
    with gr.Row():
        masked, _ = titled_image("masked input (both models)", "compare-masked", CAPTIONS["compare-masked"])
        target, _ = titled_image("target (PCA)", "compare-target", CAPTIONS["compare-target"])
    loss = gr.Markdown(elem_id="compare-loss")
    rows = []
    for key in ("a", "b"):
        head = gr.Markdown(elem_id=f"compare-{key}-name")
        with gr.Row():
            pred, _ = titled_image("prediction (PCA)", f"compare-{key}-pred", CAPTIONS["compare-pred"])
            error, _ = titled_image("cosine error", f"compare-{key}-error", CAPTIONS["compare-error"])
            attention, _ = titled_image("student attention", f"compare-{key}-attention", CAPTIONS["compare-attention"])
        rows.append([head, pred, error, attention])
    outputs = [masked, target, loss] + rows[0] + rows[1]
    check_control_values(model_a, model_b, sampler, ratio, seed)

    def image_or_none(a):
        return None if a is None else maps.to_uint8(a)

    def on_compare(image, name_a, name_b, sampler_name, ratio_value, seed_value):
        if image is None:
            return [None, None, ""] + [""] + [None] * 3 + [""] + [None] * 3
        try:
            r = compare_models(models.get(name_a), models.get(name_b), image, sampler_name, ratio_value, seed_value)
        except MilanLabError as e:
            raise user_error(str(e)) from None
        out = [maps.to_uint8(r["masked"]), image_or_none(r["target"]), format_compare_losses([name_a, name_b], r)]
        for label, name, m in zip(("A", "B"), (name_a, name_b), r["models"]):
            error = None if m["error"] is None else scales.with_scale(m["error"], 0, 1, "magma", "1 - cosine")
            out += [f"**Model {label}: {name}** (loss {m['loss']:.3f})", image_or_none(m["pred"]), error,
                    maps.to_uint8(m["attention"])]
        return out

    def wire(image, checked, demo):
        inputs = [image, model_a, model_b, sampler, ratio, seed]
        checked.success(on_compare, inputs, outputs, api_name=False)
        demo.load(on_compare, inputs, outputs, api_name=False)
        model_a.change(on_compare, inputs, outputs, api_name="compare_models")
        for control in (model_b, sampler, seed):
            control.change(on_compare, inputs, outputs, api_name=False)
        ratio.release(on_compare, inputs, outputs, api_name=False)
    return wire


# -- embedding -------------------------------------------------------------------------------------------
def embedding_view(models: Models, name: str, method: str, cache: dict, n: int = EMBED_SCENES) -> tuple[np.ndarray, str]:
    """(figure [H, W, 3] uint8, separability lines) of ``tools.embed.embed`` for model ``name`` beside a
    random encoder, ``method`` 'pca' or 't-SNE'; computed once per (name, method, n) and kept in ``cache``."""
    import matplotlib.pyplot as plt

    from milan_lab.tools.embed import METHODS, embed, embed_figure, format_embed
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    key = (name, method, n)
    if key not in cache:
        if name == RANDOM:
            raise ConfigError("pick a trained model: the random encoder is drawn beside it")
        result = embed(models.checkpoint(name), n=n, method=method)
        fig = embed_figure(result)
        cache[key] = (figure_pixels(fig), format_embed(result).replace("\n", "  \n"))
        plt.close(fig)
    return cache[key]


def figure_pixels(fig) -> np.ndarray:
    """The figure as ``milan-lab embed`` writes it (tight bounding box: the shape legend sits outside the
    axes, beyond the canvas) -> [H, W, 3] uint8."""
    import io

    from PIL import Image
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def embedding_tab(explorer: Explorer, user_error, check_control_values):
    """Build the "Embedding" tab (call inside ``gr.Tab``); returns ``wire(image, checked, demo)``."""
    import gradio as gr
    choices = [c for c in model_choices(explorer) if c != RANDOM]
    if not choices:
        gr.Markdown("No MILAN model loaded: pass `--checkpoint FILE_OR_RUN`.")
        return lambda image, checked, demo: None
    models, cache = Models(explorer), {}
    gr.Markdown(f"The encoder's class-token and mean-patch features of {EMBED_SCENES} offline validation scenes in "
                "two dimensions, coloured by the main object's shape, beside a random encoder of the same architecture "
                "(`milan-lab embed`). Computed when you press the button (up to a minute on a laptop CPU; t-SNE "
                "takes longer), then kept for this model and method.")
    with gr.Row():
        model = gr.Dropdown(choices, value=YOURS if YOURS in choices else choices[0], label="model", elem_id="embed-model")
        method = gr.Radio([("PCA", "pca"), ("t-SNE", "tsne")], value="pca", label="projection", elem_id="embed-method")
        draw = gr.Button("draw the embedding", elem_id="embed-draw")
    with gr.Row():
        figure, _ = titled_image("embeddings, this model and a random encoder", "embed-figure", CAPTIONS["embed-figure"],
                                 min_width=480)
    note = gr.Markdown(elem_id="embed-note")
    check_control_values(model)  # the method is checked by embedding_view (a Radio is not a number or a dropdown)

    def on_draw(name, method_name):
        try:
            return embedding_view(models, name, method_name, cache, EMBED_SCENES)  # read at call time: a test may set it
        except MilanLabError as e:
            raise user_error(str(e)) from None

    def wire(image, checked, demo):
        draw.click(on_draw, [model, method], [figure, note], api_name="embedding")
    return wire
