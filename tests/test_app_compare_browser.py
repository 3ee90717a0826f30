"""The "Compare models" and "Embedding" tabs in a real browser: the shipped model and a random init of its
architecture get one mask and show different losses; the embedding figure is drawn when the button is pressed."""
import re
import time

import pytest

from tests.helpers import ARTIFACTS, CLIPPED_JS, app_server, browser_page

LOSSES = re.compile(r"loss on the (\d+) hidden patches, same mask for both: shipped ([\d.]+), random init ([\d.]+)")
PANELS = ("compare-masked", "compare-target", "compare-a-pred", "compare-a-error", "compare-a-attention",
          "compare-b-pred", "compare-b-error", "compare-b-attention")


@pytest.fixture(scope="module")
def app_url():
    """The app on the shipped model, its embedding tab on 32 scenes (the tab's own 256 take longer than a test should)."""
    import milan_lab.app_compare as app_compare
    scenes, app_compare.EMBED_SCENES = app_compare.EMBED_SCENES, 32
    try:
        with app_server() as url:
            yield url
    finally:
        app_compare.EMBED_SCENES = scenes


def wait_for(page, read, timeout: float = 90):
    """``read(page)`` once it is not None, else fail."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = read(page)
        if value is not None:
            return value
        page.wait_for_timeout(250)
    raise AssertionError("timed out")


def test_compare_shows_both_losses_and_embedding_draws_on_the_button(app_url):
    with browser_page(app_url) as page:
        page.get_by_role("tab", name="Compare models").click(timeout=120_000)
        found = wait_for(page, lambda pg: LOSSES.search(pg.locator("#compare-loss").inner_text()))
        hidden, shipped, random_init = int(found[1]), float(found[2]), float(found[3])
        assert hidden == 48  # 75 % of the shipped model's 64 patches, the same mask for both
        assert shipped < random_init  # the pretrained model predicts the hidden features far better
        for panel in PANELS:
            wait_for(page, lambda pg: pg.locator(f"#{panel} img").count() or None, 30)
        assert page.locator("#compare-b-name").inner_text().startswith("Model B: random init")
        for width in (1280, 900):  # titles above and captions under every image, none clipped, no sideways scroll
            page.set_viewport_size({"width": width, "height": 720})
            page.wait_for_timeout(300)
            assert page.evaluate(CLIPPED_JS) == {"clipped": [], "sideways": False}, width
        page.screenshot(path=str(ARTIFACTS / "app_compare.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 720})

        page.get_by_role("tab", name="Embedding").click()
        assert page.locator("#embed-figure img").count() == 0  # nothing computed on page load
        page.locator("#embed-draw").click()
        wait_for(page, lambda pg: pg.locator("#embed-figure img").count() or None)
        note = wait_for(page, lambda pg: pg.locator("#embed-note").inner_text() or None, 30)
        assert "shipped · class token · PCA: 2-D kNN" in note and "random init · mean patch" in note
        page.screenshot(path=str(ARTIFACTS / "app_embedding.png"), full_page=True)
