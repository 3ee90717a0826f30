"""The notebooks' parameters: your own run and image checked up front, the preset's values kept by
default, the samplers and decoders read from their registries, uploads saved, paths from the project's folder."""
import ast
import datetime
import io
import json
import os
import re
import subprocess
import sys

import nbformat
import numpy as np
import pytest
from PIL import Image

from milan_lab.config import get_config
from milan_lab.errors import BadImage, CheckpointError, ConfigError
from milan_lab.models.masking import SAMPLERS
from milan_lab.tools import notebook
from milan_lab.viz.panels import SHIPPED_MODEL
from tests.helpers import MICRO, ROOT, env

NOTEBOOKS = ROOT / "notebooks"
OWN_RUN = ("tour", "explore", "segmentation")


def _parameters(name: str) -> dict:
    """The parameters cell of a notebook, evaluated: {name: default}."""
    cell = next(c for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code")
    values = {}
    exec(compile(cell.source, name, "exec"), {}, values)  # literals only (the test below reads them as such too)
    return values


def _check(name: str, **changed):
    notebook.check_parameters(name, **{**_parameters(name), **changed})


def _png(path, size=(90, 60)) -> str:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.mark.parametrize("name", OWN_RUN)
def test_own_run_notebooks_default_to_the_shipped_model_and_an_example_scene(name):
    params = _parameters(name)
    assert params["checkpoint"] == "shipped" and notebook.SCENE.match(params["image"])
    _check(name)  # the defaults pass
    assert notebook.checkpoint_file(params["checkpoint"]) == SHIPPED_MODEL


@pytest.mark.parametrize("name", OWN_RUN)
def test_a_missing_checkpoint_or_an_empty_run_folder_is_refused_naming_the_parameter(name, tmp_path):
    with pytest.raises(CheckpointError, match="'checkpoint'.*nope"):
        _check(name, checkpoint=str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="'checkpoint'.*no checkpoints"):
        _check(name, checkpoint=str(tmp_path))  # a folder without step_*.pt


@pytest.mark.parametrize("name", OWN_RUN)
def test_a_missing_or_unreadable_image_is_refused_naming_the_parameter(name, tmp_path):
    with pytest.raises(BadImage, match="'image'.*missing.png"):
        _check(name, image=str(tmp_path / "missing.png"))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(BadImage, match="'image'.*notes.png"):
        _check(name, image=str(tmp_path / "notes.png"))
    with pytest.raises(ConfigError, match="'image'"):
        _check(name, image=3)


def test_a_run_folder_resolves_to_its_newest_checkpoint(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    for step in (2, 10):
        (tmp_path / "checkpoints" / f"step_{step:08d}.pt").write_bytes(b"x")
    assert notebook.checkpoint_file(str(tmp_path)).name == "step_00000010.pt"


def test_an_image_file_becomes_the_square_picture_the_explorer_shows(tmp_path):
    picture, spec = notebook.notebook_image(_png(tmp_path / "wide.png"))
    assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8 and spec is None
    scene, spec = notebook.notebook_image("scene_2")
    assert scene.shape == (256, 256, 3) and spec.shape in spec.caption()
    assert notebook.model_input(scene, 64).shape == (1, 3, 64, 64)
    assert len(notebook.scene_prompts(None)) == 3 and notebook.scene_prompts(spec)[0] == f"a {spec.shape}"


@pytest.mark.parametrize("name", ["pretrain", "finetune", "linear_probe"])
def test_job_parameters_default_to_the_presets_values(name):
    """Every parameter that is a config option defaults to None ("keep the preset's value"), so that
    a run without it gets the preset's (mask_ratio used to be 0.75 whatever the preset said)."""
    job = {"linear_probe": "linear"}.get(name, name)
    cfg = get_config(job, _parameters(name)["preset"])
    options = {f.name for f in cfg.__dataclass_fields__.values()} | set(cfg.model.__dataclass_fields__)
    own = {"preset", "output_dir", "checkpoint"}  # the notebook's own choice: where it reads and writes
    set_here = {k: v for k, v in _parameters(name).items() if k in options and k not in own and v is not None}
    assert set_here == {}


def test_notebooks_offer_the_samplers_and_decoders_their_registries_hold():
    """No notebook writes the samplers down again: a list of three or more sampler names in code is a
    copy that drifts (a pair compared, MILAN's against MAE's, is a choice, not a copy)."""
    for path in NOTEBOOKS.glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                    names = {e.value for e in node.elts if isinstance(e, ast.Constant)} & set(SAMPLERS)
                    assert len(names) < 3, f"{path.name}: a literal list of samplers {sorted(names)}"
    for name, check in (("sampler", "pretrain"), ("decoder", "pretrain")):
        with pytest.raises(ConfigError, match=f"'{name}'"):
            _check(check, **{name: "no-such"})
    for sampler in SAMPLERS:
        _check("pretrain", sampler=sampler)


def test_uploads_that_are_images_are_saved_and_offered(tmp_path):
    widgets = pytest.importorskip("ipywidgets")
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    examples = {"scene_0": "scene_0.png"}
    picker = widgets.Dropdown(options=list(examples))
    upload, status = notebook.upload_control(examples, picker, tmp_path / "uploads")
    when = datetime.datetime.now(datetime.timezone.utc)  # as the widget deserialises a browser's upload
    upload.value = ({"name": "../red.png", "type": "image/png", "size": 1, "content": memoryview(buffer.getvalue()),
                     "last_modified": when}, {"name": "notes.png", "content": memoryview(b"text"), "type": "", "size": 4,
                                              "last_modified": when})
    assert (tmp_path / "uploads" / "red.png").is_file() and not (tmp_path / "uploads" / "notes.png").exists()
    assert picker.value == "red.png" and list(picker.options) == ["scene_0", "red.png"]
    assert "notes.png" in status.value and "red.png" not in status.value


def test_relative_paths_mean_the_project_folder_in_jupyterlab_too(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "tour.ipynb").write_text("{}")
    monkeypatch.chdir(tmp_path / "notebooks")  # where JupyterLab starts the kernel
    assert notebook.work_in_project_folder("tour") == tmp_path and os.getcwd() == str(tmp_path)
    assert notebook.work_in_project_folder("tour") == tmp_path  # papermill's (and a second call): unchanged


@pytest.mark.parametrize("bad, named", [  # named: the parameter, and what the message must point at
    ({"arms": ["MILANN"]}, "parameter 'arms'.*'MILANN'"),
    ({"seeds": []}, "parameter 'seeds'"),
    ({"seeds": "[0]"}, "parameter 'seeds'.*-y"),  # a list given as text: the message names papermill's -y
    ({"seg_steps": -1}, "parameter 'seg_steps'"),
    ({"variant": "crowded"}, "parameter 'variant'.*'crowded'"),
    ({"primary": "accuracy"}, "parameter 'primary'.*'accuracy'"),
])
def test_ablation_parameters_are_checked_naming_the_parameter(bad, named):
    good = dict(preset=MICRO, variant="dense", seeds=[0], arms=["MILAN"], primary="linear_mean", epochs=1,
                offline_size=64, batch_size=32, max_steps=None, eval_train=8, eval_val=8, seg_train=8, seg_val=8,
                seg_steps=1, output_dir="x")
    notebook.check_parameters("ablation", **good)
    with pytest.raises(ConfigError, match=named):
        notebook.check_parameters("ablation", **{**good, **bad})


@pytest.mark.parametrize("name, bad, named", [
    ("segmentation", {"steps": 0}, "parameter 'steps'"),
    ("tour", {"mask_ratio": 1.5}, "parameter 'mask_ratio'"),
    ("teacher", {"n_eval": "many"}, "parameter 'n_eval'"),
    ("pretrain", {"sampler": "smart"}, "parameter 'sampler'"),
    ("linear_probe", {"knn_train": -5}, "parameter 'knn_train'"),
])
def test_every_notebook_checks_its_parameters(name, bad, named):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in (c["metadata"].get("tags") or []))
    params = {}
    exec("".join(cell["source"]), params)  # noqa: S102 -- the notebook's own defaults
    defaults = {k: v for k, v in params.items() if not k.startswith("__")}
    notebook.check_parameters(name, **defaults)  # the defaults pass
    assert re.search(r"check_parameters\(", "".join("".join(c["source"]) for c in nb["cells"]))
    with pytest.raises(ConfigError, match=named):
        notebook.check_parameters(name, **{**defaults, **bad})


def test_a_bad_notebook_parameter_stops_papermill_with_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "papermill", "notebooks/ablation.ipynb", str(tmp_path / "o.ipynb"),
                           "-y", "{arms: [MILANN], seeds: [0]}"], cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "ConfigError: parameter 'arms'" in done.stderr
    assert "Traceback (most recent call last)" not in done.stderr.split("Exception encountered at")[-1]
