"""The explorer in a real browser (headless Chromium), one app and one page for the module: every tab
with every example scene, a cleared image, an uploaded photo, and the layout at 1280 and 900 px wide.
What each panel shows is read back from the page (the image files it displays, its title and caption).

Screenshots of each tab go to outputs/test-artifacts/ (git-ignored); with MILAN_LAB_SCREENSHOT=1 the
README's picture, docs/figures/app.png, is written too (a tracked file: never by default)."""
import os
import time

import numpy as np
import pytest
from PIL import Image

from milan_lab.data.scenes import SEG_CLASSES, make_labelled_scene, make_scene
from milan_lab.viz.maps import class_colours, to_uint8
from milan_lab.viz.panels import DISPLAY, EXAMPLE_SCENES
from tests.helpers import ARTIFACTS, CLIPPED_JS, ROOT, app_server, browser_page, fetch_image

README_SHOT = ROOT / "docs" / "figures" / "app.png"
PANELS = {"Attention": ["attention-map", "attention-rollout", "student-attention", "random-attention"],
          "Masks": ["mask-a", "mask-b"],
          "Reconstruction": ["rec-masked", "rec-target", "rec-pred", "rec-cos", "rec-text"],
          "Segmentation": ["segmentation", "segmentation-truth"]}
OTHER_TABS = ["Paint a mask", "About"]  # screenshots only: the paint tab has its own browser test
SCALED = ["attention-map", "attention-rollout", "student-attention", "random-attention", "rec-cos"]  # colour bar drawn in
HINT = "No image."
# each panel's state in the page: [image src or null, busy]
STATE_JS = """ids => ids.map(id => { const el = document.getElementById(id); if (!el) return [null, true];
  const img = el.querySelector('img'); return [img ? img.src : null, /processing|queue/i.test(el.innerText)]; })"""


@pytest.fixture(scope="module")
def page():
    """One app and one page for the module, at 1280 x 720, once the image info is shown."""
    with app_server() as url, browser_page(url) as page:
        page.locator("#image-info").wait_for()
        yield page


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def wait_for_panels(page, ids: list[str], before: dict, empty=(), timeout: float = 90) -> dict:
    """Wait until every panel in ``ids`` shows a new image (its src differs from ``before``), those in
    ``empty`` show none, and none is busy; returns {id: src}."""
    deadline = time.time() + timeout
    while True:
        state = dict(zip(ids, page.evaluate(STATE_JS, ids)))
        done = all(not busy and (src is None if i in empty else src is not None and src != before.get(i))
                   for i, (src, busy) in state.items())
        if done:
            return {i: src for i, (src, _) in state.items()}
        assert time.time() < deadline, f"panels not updated: {state}"
        page.wait_for_timeout(200)


def shoot(page, tab: str, width: int) -> None:
    page.screenshot(path=str(ARTIFACTS / f"app-{tab.lower().replace(' ', '-')}-{width}.png"), full_page=True)


def assert_no_error_shown(page) -> None:
    assert page.locator(".toast-body").count() == 0, page.locator(".toast-body").all_inner_texts()
    assert page.locator(".error").count() == 0  # no red badge on any panel


def assert_colour_bar(img: np.ndarray, elem_id: str) -> None:
    """A map with its colour bar under it: taller than wide, the strip mostly white around a gradient."""
    h, w, _ = img.shape
    assert h > w + 20, (elem_id, img.shape)
    strip = img[w:]
    assert (strip.min(-1) > 240).mean() > 0.3, elem_id  # the strip's white ground, with text in it
    bar = strip[6:12, 10:-10].astype(int)  # the gradient: its colours change from end to end
    assert np.abs(bar[:, -1] - bar[:, 0]).sum(-1).mean() > 100, elem_id


def assert_truth_on_the_objects(truth: np.ndarray, key) -> None:
    """The ground-truth panel outlines, in each class's colour, exactly the scene's objects as the
    picture shows them: the scene's own label map at the display size."""
    labels = make_labelled_scene(*key, DISPLAY)[1]
    assert truth.shape[:2] == labels.shape
    colours = to_uint8(class_colours(len(SEG_CLASSES)))
    for c in sorted(set(np.unique(labels)) - {0}):
        band = (truth == colours[c]).all(-1)
        assert band.sum() > 100, (key, SEG_CLASSES[c], int(band.sum()))
        assert (labels[band] == c).mean() > 0.98, (key, SEG_CLASSES[c])


def test_every_tab_with_every_example_scene(page):
    srcs: dict = {}
    for n, key in enumerate(EXAMPLE_SCENES):
        page.locator("#examples button").nth(n).click()
        page.wait_for_function("t => document.getElementById('image-info').innerText.includes(t)",
                               arg=f"Example scene {n + 1} of", timeout=30_000)
        assert f"scene_{key[2]}.png" in page.locator("#image-name").inner_text()
        for tab, ids in PANELS.items():
            open_tab(page, tab)
            srcs.update(wait_for_panels(page, ids, srcs))
            assert_no_error_shown(page)
            for elem_id in ids:  # every panel is titled and captioned
                assert page.locator(f"#{elem_id}-caption").inner_text().strip()
            if n == 0:
                shoot(page, tab, 1280)
        if n == 0:
            for tab in OTHER_TABS:
                open_tab(page, tab)
                page.wait_for_timeout(1000)
                shoot(page, tab, 1280)
        for elem_id in SCALED:
            assert_colour_bar(fetch_image(srcs[elem_id]), elem_id)
        assert_truth_on_the_objects(fetch_image(srcs["segmentation-truth"]), key)
        shown = fetch_image(srcs["segmentation"])
        assert shown.shape == (DISPLAY, DISPLAY, 3)
        assert (shown == make_scene(*key, DISPLAY)[0]).all(-1).mean() > 0.5  # outlines: the picture shows through
        assert "mIoU" in page.locator("#segmentation-note").inner_text()
    open_tab(page, "Masks")
    titles = page.locator("#mask-a-title, #mask-b-title").all_inner_texts()
    assert [t.strip() for t in titles] == ["semantic sampler", "random sampler"]
    page.locator("#sampler-a input").click()
    page.get_by_role("option", name="topk").click()
    page.wait_for_function("() => document.getElementById('mask-a-title').innerText.trim() === 'topk sampler'")
    wait_for_panels(page, ["mask-a"], srcs)
    assert "topk:" in page.locator("#mask-note").inner_text()
    if os.environ.get("MILAN_LAB_SCREENSHOT") == "1":  # the README's picture: the first scene's attention tab
        page.locator("#examples button").nth(0).click()
        open_tab(page, "Attention")
        wait_for_panels(page, PANELS["Attention"], srcs)
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(README_SHOT))


def test_clearing_the_image_shows_one_hint_and_empty_panels(page):
    page.locator("#input-image button[aria-label='Remove Image']").click()
    page.get_by_text(HINT).wait_for(timeout=30_000)
    for tab, ids in PANELS.items():
        open_tab(page, tab)
        wait_for_panels(page, ids, {}, empty=ids)
        assert page.get_by_text(HINT).count() == 1
        assert_no_error_shown(page)
    assert page.locator("#image-name").inner_text().strip() == ""


def test_an_uploaded_photo_is_named_and_shown_without_truth(page, tmp_path):
    from skimage import data
    photo = tmp_path / "my cat.jpg"
    Image.fromarray(data.chelsea()).save(photo, quality=90)
    page.locator("#input-image input[type=file]").set_input_files(str(photo))
    page.wait_for_function("() => document.getElementById('image-info').innerText.includes('Your image')",
                           timeout=30_000)
    page.wait_for_function("() => document.getElementById('image-name').innerText.includes('my cat.jpg')")
    assert page.get_by_text(HINT).count() == 0
    for tab, ids in PANELS.items():
        open_tab(page, tab)
        empty = ["segmentation-truth"] if tab == "Segmentation" else []
        wait_for_panels(page, ids, {}, empty=empty)
        assert_no_error_shown(page)
    assert "example scenes only" in page.locator("#segmentation-note").inner_text()


@pytest.mark.parametrize("width", [1280, 900])
def test_titles_and_captions_fit_at_1280_and_900_px(page, width):
    page.set_viewport_size({"width": width, "height": 720})
    page.locator("#examples button").nth(1).click()
    for tab, ids in PANELS.items():
        open_tab(page, tab)
        wait_for_panels(page, ids, {})
        layout = page.evaluate(CLIPPED_JS)
        assert layout == {"clipped": [], "sideways": False}, (tab, width, layout)
        if width != 1280:
            shoot(page, tab, width)
    page.set_viewport_size({"width": 1280, "height": 720})
