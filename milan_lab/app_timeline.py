"""The explorer's "Timeline" tab (``milan-lab app --checkpoint RUN``): a slider over the run's snapshots.

For the snapshot the slider points at: its student attention on the image and its agreement with the
teacher there; on request, every snapshot's kNN top-1 and attention metrics
(``evaluation.timeline``) drawn as a curve with the slider's step marked. Layout and wiring only;
``app.py`` builds it inside its tabs and calls the returned ``wire(image, checked, demo)``.
"""
import functools
from pathlib import Path

from milan_lab.app_blocks import titled_image
from milan_lab.errors import MilanLabError
from milan_lab.io.timeline import list_snapshots
from milan_lab.viz import maps

# smaller than ``milan-lab timeline``'s defaults: the curve is drawn while the user waits
KNN_TRAIN, KNN_VAL, SCENES = 512, 128, 64
CAPTIONS = {
    "timeline-attention": "The snapshot's class-token attention on this image (mean of the last layer's heads), "
                          "bright = attended; the note below gives its agreement with the teacher's when their patch grids match.",
    "timeline-curve": "Every snapshot's kNN top-1 and attention on the object, the slider's step marked; drawn when "
                      "you press the button (scoring takes a while).",
}


def run_snapshots(explorer) -> list:
    """(step, file) of the snapshots of the run folder the app was started with ([] for a file or none)."""
    source = explorer.model_source
    return list_snapshots(source) if source and Path(source).is_dir() else []


def timeline_tab(explorer, user_error, check_control_values):
    """Build the tab (call inside ``gr.Tab``); returns ``wire(image, checked, demo)``."""
    import gradio as gr
    found = run_snapshots(explorer)
    if not found:
        gr.Markdown("Start the app with a run folder that kept a timeline (`milan-lab app --checkpoint RUN`; "
                    "pretraining keeps about 8 encoder snapshots in RUN/timeline by default, `keep_every=N` sets "
                    "their spacing) to step through what the encoder learned.", elem_id="timeline-none")
        return lambda image, checked, demo: None
    from milan_lab.factory.models import load_encoder
    from milan_lab.viz.timeline import figure_array, snapshot_attention, timeline_figure
    steps = [s for s, _ in found]
    scored = {}
    gr.Markdown(f"{len(found)} snapshots of `{explorer.model_source}`, steps {steps[0]} to {steps[-1]}.")
    with gr.Row():
        index = gr.Slider(0, len(found) - 1, value=len(found) - 1, step=1, label="snapshot (0 = earliest)",
                          elem_id="timeline-slider")
        score = gr.Button("score every snapshot (kNN, attention)", elem_id="timeline-score")
    with gr.Row():
        attention, _ = titled_image("student attention at this step", "timeline-attention", CAPTIONS["timeline-attention"])
        curve, _ = titled_image("kNN top-1 and attention over steps", "timeline-curve", CAPTIONS["timeline-curve"])
    note = gr.Markdown(elem_id="timeline-note")
    check_control_values(index)

    @functools.lru_cache(maxsize=2)  # the slider's current and previous snapshot (a ViT-B encoder is 350 MB in fp32)
    def encoder_at(i: int):
        return load_encoder(found[i][1], explorer.model.cfg)

    @functools.lru_cache(maxsize=1)
    def teacher():  # the run's own, as ``milan-lab timeline`` compares with (not necessarily the app's)
        from milan_lab.evaluation.timeline import run_teacher
        return run_teacher(explorer.model_source)

    def on_snapshot(image, i):
        if image is None:
            return None, None, ""
        i = int(i)
        try:
            r = snapshot_attention(encoder_at(i), teacher(), image)
        except MilanLabError as e:
            raise user_error(str(e)) from None
        text = f"step {steps[i]}" + (f": agreement with the run's teacher's map on this image {r['agreement']:+.2f}"
                                     if r["agreement"] is not None else "")
        fig = figure_array(timeline_figure(scored["result"], highlight=steps[i])) if scored else None
        return maps.to_uint8(r["map"]), fig, text

    def on_score(image, i):
        from milan_lab.evaluation.timeline import timeline_metrics
        try:
            scored["result"] = timeline_metrics(explorer.model_source, KNN_TRAIN, KNN_VAL, SCENES)
        except MilanLabError as e:
            raise user_error(str(e)) from None
        return on_snapshot(image, i)

    outputs = [attention, curve, note]

    def wire(image, checked, demo):
        checked.success(on_snapshot, [image, index], outputs, api_name=False)
        demo.load(on_snapshot, [image, index], outputs, api_name=False)
        index.release(on_snapshot, [image, index], outputs, api_name="timeline_snapshot")
        score.click(on_score, [image, index], outputs, api_name="timeline_score")
    return wire
