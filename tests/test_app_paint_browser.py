"""The "Paint a mask" tab in a real browser: hide the main object of an example scene, read the loss beside the samplers'."""
import re
import time

import pytest

from tests.helpers import ARTIFACTS, CLIPPED_JS, app_server, browser_page

LOSSES = re.compile(r"loss on the (\d+) hidden patches .*this mask ([\d.]+); at the same budget: "
                    r"semantic sampler ([\d.]+), random sampler ([\d.]+)")
PANELS = ("paint-mask", "paint-pred", "paint-error", "paint-importance", "paint-filled-pred", "paint-filled-target")


@pytest.fixture(scope="module")
def app_url():
    with app_server() as url:
        yield url


def test_hide_the_main_object_and_read_its_loss_beside_the_samplers(app_url):
    from milan_lab.data.scenes import make_scene_with_main_object
    from milan_lab.viz.paint import object_patches
    on_object = int(object_patches(make_scene_with_main_object(0, "test", 0, 64)[1] >= 0.5, 8).sum())

    def losses(page, timeout: float = 90):
        """(hidden, this mask, semantic, random) once the loss line shows, else None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = LOSSES.search(page.locator("#paint-loss").inner_text())
            if found:
                return int(found[1]), *map(float, found.groups()[1:])
            page.wait_for_timeout(250)
        return None

    with browser_page(app_url) as page:
        page.get_by_role("tab", name="Paint a mask").click(timeout=120_000)
        # the first example scene is shown at start, with the default preset: hide the main object
        first = losses(page)
        assert first is not None, page.locator("#paint-loss").inner_text()
        hidden, own, semantic, random_ = first
        assert hidden == on_object  # exactly the object's patches
        assert own > semantic and own > random_  # hiding the object costs more than either sampler at its budget
        assert page.locator("#paint-filled-pred img").count() == 1
        assert "top-5 retrieval" in page.locator("#paint-filled-note").inner_text()
        page.screenshot(path=str(ARTIFACTS / "app_paint.png"), full_page=True)
        for width in (1280, 900):  # each image's title above it and caption under it, none clipped, no sideways scroll
            page.set_viewport_size({"width": width, "height": 720})
            page.wait_for_timeout(300)
            assert page.evaluate(CLIPPED_JS) == {"clipped": [], "sideways": False}, width
            for panel in PANELS:
                assert page.locator(f"#{panel}-title").is_visible() and page.locator(f"#{panel}-caption").is_visible(), panel
        page.screenshot(path=str(ARTIFACTS / "app_paint-900.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 720})
        # a click on the top-left patch (background in this scene) hides one more
        img = page.locator("#paint-mask img")
        box = img.bounding_box()
        img.click(position={"x": box["width"] * 0.03, "y": box["height"] * 0.03})
        deadline = time.time() + 60
        while time.time() < deadline and (losses(page, 5) or (hidden,))[0] == hidden:
            page.wait_for_timeout(250)
        assert losses(page)[0] == hidden + 1
