"""The explorer: handlers directly, the launched app through gradio_client, and a real browser."""
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from milan_lab.data.images import load_image
from milan_lab.errors import BadImage
from milan_lab.viz.panels import Explorer
from tests.helpers import ARTIFACTS, ROOT, app_server, browser_page


@pytest.fixture(scope="module")
def explorer():
    return Explorer.from_defaults()


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    from milan_lab.data.scenes import make_scene
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(make_scene(0, "test", 1, 200)[0]).save(path)
    return path


def test_panels_from_the_shipped_models(explorer, scene_png):
    att = explorer.attention(str(scene_png), layer=-1, rollout=True)
    assert att["map"].shape == (256, 256, 3) and att["rollout"].shape == (256, 256, 3)
    head0 = explorer.attention(str(scene_png), layer=0, head=0)["map"]
    assert not np.allclose(head0, att["map"])
    sem = explorer.masks(str(scene_png), "semantic", 0.75, seed=1)
    assert sem["overlay"].shape == (256, 256, 3) and int(sem["mask"].sum()) == 48
    rec = explorer.reconstruction(str(scene_png), "semantic", 0.75, 1, ["a star", "a circle"])
    assert rec["pca_target"].shape == rec["pca_pred"].shape == (8, 8, 3)
    assert rec["cosine"].shape == (256, 256, 3) and rec["text_pred"].shape == (2, 64)
    assert -1 <= rec["cos_masked"] <= 1


def test_semantic_masks_keep_more_attention_than_random(explorer, scene_png):
    kept = {s: np.mean([explorer.masks(str(scene_png), s, 0.75, k)["kept_attention"] for k in range(20)])
            for s in ("semantic", "random")}
    assert kept["semantic"] > kept["random"] + 0.1


def _write(path, data):
    path.write_bytes(data)
    return str(path)


def test_bad_uploads_get_clear_messages(tmp_path, scene_png):
    with pytest.raises(BadImage, match="not a readable image"):
        load_image(_write(tmp_path / "a.png", b"this is not an image"))
    corrupt = scene_png.read_bytes()[:200]
    with pytest.raises(BadImage, match="not a readable image"):
        load_image(_write(tmp_path / "b.png", corrupt))
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    with pytest.raises(BadImage, match="too small"):
        load_image(str(tmp_path / "tiny.png"))
    Image.new("1", (8000, 6000)).save(tmp_path / "huge.png")
    with pytest.raises(BadImage, match="too large"):
        load_image(str(tmp_path / "huge.png"))
    with pytest.raises(BadImage, match="No image"):
        load_image(None)


def test_unusual_but_valid_images_are_converted(tmp_path):
    Image.new("L", (64, 48), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(tmp_path / "rgba.png")
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(tmp_path / "deep.png")
    for name in ("grey.png", "rgba.png", "deep.png"):
        img = load_image(str(tmp_path / name))
        assert img.mode == "RGB" and min(img.size) >= 48
    assert np.asarray(load_image(str(tmp_path / "rgba.png"))).min() == 255  # transparent -> white
    assert np.asarray(load_image(str(tmp_path / "deep.png"))).max() == 255  # 16-bit rescaled


@pytest.fixture(scope="module")
def running_app():
    with app_server() as url:
        yield url


def test_app_binds_localhost_and_answers_through_gradio_client(running_app, scene_png):
    from gradio_client import Client, handle_file
    assert running_app.startswith("http://127.0.0.1:")
    client = Client(running_app, verbose=False)
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/upload", "/attention", "/masks", "/reconstruct"} <= names
    img = handle_file(str(scene_png))
    att_map, rollout = client.predict(img, 0, "mean", api_name="/attention")
    assert Path(att_map).is_file() and Path(rollout).is_file()
    a, b, note = client.predict(img, "semantic", "random", 0.5, 0, api_name="/masks")
    assert Path(a).is_file() and "semantic" in note and "random" in note
    out = client.predict(img, "semantic", 0.75, 0, "a star, a ring", api_name="/reconstruct")
    assert all(Path(p).is_file() for p in out[:5]) and "cosine" in out[5]
    student, random_map, note = client.predict(img, "mean", api_name="/student_attention")
    assert Path(student).is_file() and Path(random_map).is_file() and "student" in note
    seg, truth, legend, seg_note = client.predict(img, api_name="/segmentation")
    assert Path(seg).is_file() and truth is None and seg_note.startswith("Predicted:") and "example scenes only" in seg_note
    assert all(name in legend for name in ("circle", "star", "crescent")) and ">background<" not in legend
    bad = ROOT / "outputs" / "not_an_image.png"
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(b"nope")
    calls = {"/upload": (), "/attention": (0, "mean"), "/masks": ("semantic", "random", 0.5, 0),
             "/reconstruct": ("semantic", 0.75, 0, "a star")}
    for endpoint, args in calls.items():  # the same clear message on every endpoint
        with pytest.raises(Exception, match="not_an_image.png: not a readable image") as info:
            client.predict(handle_file(str(bad)), *args, api_name=endpoint)
        assert "Could not preprocess" not in str(info.value), endpoint


def test_real_browser_upload_slider_and_panels(running_app, scene_png):
    with browser_page(running_app, width=1400, height=1000) as page:
        page.locator("#input-image input[type=file]").set_input_files(str(scene_png))

        def panel_has_image(elem_id: str, timeout: float = 30) -> bool:
            """The panel shows an image and is no longer processing."""
            deadline = time.time() + timeout
            while time.time() < deadline:
                panel = page.locator(f"#{elem_id}")
                if panel.locator("img").count() > 0 and "processing" not in panel.inner_text():
                    return True
                page.wait_for_timeout(250)
            return False

        assert panel_has_image("attention-map")
        assert panel_has_image("student-attention") and panel_has_image("random-attention")
        page.get_by_role("tab", name="Masks").click()
        slider = page.locator("#ratio input[type=range]")
        slider.fill("0.5")
        slider.dispatch_event("change")
        slider.dispatch_event("pointerup")
        assert panel_has_image("mask-a") and panel_has_image("mask-b")
        page.get_by_role("tab", name="Reconstruction").click()
        assert panel_has_image("rec-target") and panel_has_image("rec-pred") and panel_has_image("rec-cos")
        page.get_by_role("tab", name="Segmentation").click()
        assert panel_has_image("segmentation")
        page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
    assert (ARTIFACTS / "app.png").stat().st_size > 10_000


def test_student_attention_and_segmentation_panels(explorer, scene_png):
    r = explorer.student_attention(str(scene_png))
    assert r["student"].shape == r["random"].shape == r["teacher"].shape == (256, 256, 3)
    # what the caption says: more of the pretrained student's attention falls on the scene's main object
    from milan_lab.data.scenes import make_scene_with_main_object
    from milan_lab.evaluation.attention import object_mass
    from milan_lab.evaluation.features import patch_cover
    _, main = make_scene_with_main_object(0, "test", 1, 200)
    cover = patch_cover(main[None], 25)  # the 200-px scene's main object on the model's 8 x 8 patch grid
    mass = {k: float(object_mass(r["values"][k].numpy()[None], cover)[0]) for k in ("student", "random")}
    assert mass["student"] > 2 * mass["random"]
    seg = explorer.segmentation(str(scene_png))  # the shipped model ships with its dense probe
    assert seg["overlay"].shape == (256, 256, 3) and seg["labels"].shape == (64, 64)
    assert set(seg["present"]) <= set(seg["classes"]) and "background" in seg["present"]
    assert "truth" not in seg  # not an example scene: no ground truth to show


def test_segmentation_shows_the_truth_and_iou_of_an_example_scene(explorer):
    from milan_lab.data.scenes import SEG_CLASSES, make_labelled_scene, make_scene
    from milan_lab.viz.maps import class_colours
    image = make_scene(0, "test", 2, 256)[0]  # an example scene, as the app passes it
    seg = explorer.segmentation(image)
    truth = make_labelled_scene(0, "test", 2, 64)[1]
    assert np.array_equal(seg["truth"], truth) and seg["truth_overlay"].shape == (256, 256, 3)
    pred = seg["labels"].numpy()
    for name, iou in seg["iou"].items():  # per-class IoU recomputed by hand
        c = SEG_CLASSES.index(name)
        inter, union = np.sum((pred == c) & (truth == c)), np.sum((pred == c) | (truth == c))
        assert iou == pytest.approx(inter / union)
    assert seg["miou"] == pytest.approx(np.mean(list(seg["iou"].values())))
    r, g, b = (255 * class_colours(len(SEG_CLASSES))[SEG_CLASSES.index("star")]).round().astype(int)
    assert f'background:rgb({r},{g},{b});margin-right:4px;vertical-align:middle"></span>star<' in seg["legend"]
    assert explorer.segmentation(image[:, ::-1].copy()).get("truth") is None  # a changed image is no example


def test_pixel_target_model_shows_pixel_reconstructions(tiny_teacher, scene_png):
    from milan_lab.config import ModelConfig
    from milan_lab.models.milan import MILAN
    cfg = ModelConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, decoder_embed_dim=32,
                      decoder_depth=1, decoder_num_heads=2, target="pixels", sampler="random")
    ex = Explorer(tiny_teacher, MILAN(cfg))
    r = ex.reconstruction(str(scene_png), "random", 0.75, 0)
    assert r["cosine"] is None and r["pixels"].shape == (32, 32, 3) and r["pasted"].shape == (32, 32, 3)
    assert 0 <= r["pasted"].min() and r["pasted"].max() <= 1


def test_the_log_tells_a_users_bad_file_from_a_bug(running_app, scene_png, capfd, caplog, monkeypatch):
    """A bad upload is one log line (no traceback); a real exception in a handler keeps its traceback."""
    import logging

    from gradio_client import Client, handle_file
    client = Client(running_app, verbose=False)
    bad = ROOT / "outputs" / "not_an_image.png"
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(b"nope")
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="milan_lab.app"):
        for endpoint, args in {"/upload": (), "/attention": (0, "mean")}.items():
            with pytest.raises(Exception, match="not a readable image"):
                client.predict(handle_file(str(bad)), *args, api_name=endpoint)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = [r.getMessage() for r in caplog.records if r.name == "milan_lab.app"]
    assert lines and all(m.startswith("user error: ") and "\n" not in m for m in lines)
    assert any("not_an_image.png: not a readable image" in m for m in lines)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug inside a handler")
    monkeypatch.setattr(Explorer, "attention", bug)
    with pytest.raises(Exception):
        client.predict(handle_file(str(scene_png)), 0, "mean", api_name="/attention")
    err = capfd.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug inside a handler" in err
