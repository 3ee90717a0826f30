"""The "Timeline" tab in a real browser (``milan-lab app --checkpoint RUN`` on a tiny run that kept snapshots):
the slider moves to an earlier step and the panel shows that snapshot's attention; titles and captions fit."""
import time

import numpy as np
import pytest

from tests.helpers import ARTIFACTS, CLIPPED_JS, app_server, browser_page, fetch_image, tiny_overrides

ATTENTION = "#timeline-attention img"


@pytest.fixture(scope="module")
def app_url(teacher_dir, tmp_path_factory):
    """The app on a 4-step run (64 scenes, batch 16, 1 epoch) of a 32-px model, a snapshot every 2 steps."""
    from milan_lab.config import get_config
    from milan_lab.jobs.pretrain import pretrain
    run = tmp_path_factory.mktemp("run")
    pretrain(get_config("pretrain", "milan_vit-micro-p8_offline",
                        tiny_overrides(teacher_dir, run, offline_size=64, epochs=1, keep_every=2, checkpoint_every=4)))
    with app_server(checkpoint=str(run)) as url:
        yield url


def shown(page, step: int, before: str | None = None, timeout: float = 90) -> str:
    """The attention image's src once the note names ``step`` and the image is not ``before``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        img = page.locator(ATTENTION)
        src = img.get_attribute("src") if img.count() else None
        if src and src != before and page.locator("#timeline-note").inner_text().startswith(f"step {step}"):
            return src
        page.wait_for_timeout(250)
    raise AssertionError(f"step {step} not shown: {page.locator('#timeline-note').inner_text()!r}")


def test_the_slider_shows_each_snapshots_attention(app_url):
    with browser_page(app_url) as page:
        page.get_by_role("tab", name="Timeline").click(timeout=120_000)
        last = shown(page, 4)  # the slider starts at the last snapshot
        slider = page.locator("#timeline-slider input[type=range]")
        slider.fill("0")
        slider.dispatch_event("change")
        slider.dispatch_event("pointerup")  # the tab answers on release
        first = shown(page, 2, before=last)
        a, b = fetch_image(last), fetch_image(first)
        assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() > 0.5  # each snapshot its own map
        page.screenshot(path=str(ARTIFACTS / "app-timeline-1280.png"), full_page=True)
        for width in (1280, 900):
            page.set_viewport_size({"width": width, "height": 720})
            page.wait_for_timeout(300)
            assert page.evaluate(CLIPPED_JS) == {"clipped": [], "sideways": False}, width
            for panel in ("timeline-attention", "timeline-curve"):
                assert page.locator(f"#{panel}-title").is_visible() and page.locator(f"#{panel}-caption").is_visible(), panel
        page.screenshot(path=str(ARTIFACTS / "app-timeline-900.png"), full_page=True)
