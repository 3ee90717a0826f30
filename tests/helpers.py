"""Shared helpers for the tests: the repository's paths and shipped names, tiny configs that run the engines
end to end in seconds, the CLI in-process and as a real process, small image folders, and the explorer in a
headless browser."""
import os
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

import milan_lab
from milan_lab.data.tokenizer import WordTokenizer
from milan_lab.jobs.teacher import export_teacher
from tests.conftest import TINY_CLIP, make_clip

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(milan_lab.__file__).resolve().parent / "assets"  # the package's own (what a measurement must not write into)
SHIPPED = str(ASSETS / "milan_tiny_offline.safetensors")  # the shipped pretrained model
SHIPPED_FT = "vit-tiny-p8_milan-pre_offline-ft"  # the shipped classifier, by its zoo name
MICRO = "milan_vit-micro-p8_offline"
ARTIFACTS = ROOT / "outputs" / "test-artifacts"  # screenshots (git-ignored)


def tiny_teacher_folder(path: Path) -> Path:
    """A randomly initialised 32-px open_clip teacher exported as a local-dir folder."""
    if not (path / "open_clip_config.json").is_file():
        export_teacher(make_clip(), WordTokenizer(), TINY_CLIP, path, image_size=32)
    return path


def tiny_overrides(teacher: Path, out: Path, **extra) -> list[str]:
    """A pretraining config that takes seconds: 32 px, 16 patches, 2+1 layers."""
    base = dict(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, decoder_embed_dim=32,
                decoder_depth=1, decoder_num_heads=2, target_dim=32, teacher=str(teacher), offline_size=96,
                batch_size=16, epochs=2, warmup_epochs=0.5, knn_every=0, checkpoint_every=2, log_every=1,
                progress=False, keep_every=0, output_dir=str(out))
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def run_cli(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "milan_lab", *args], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=timeout, **kw)


def call_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``milan_lab.cli.main(argv)`` run in this process."""
    from milan_lab.cli import main
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def scene_folder(root: Path, names, per_class: int = 6) -> Path:
    """A class folder of 64-px test scenes: ``per_class`` images in ``root/NAME/`` for each shape NAME."""
    from milan_lab.data.scenes import make_scene
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    kept, i = dict.fromkeys(names, 0), 0
    while min(kept.values()) < per_class:
        img, spec = make_scene(0, "test", i, 64)
        i += 1
        if spec.shape in kept and kept[spec.shape] < per_class:
            Image.fromarray(img).save(root / spec.shape / f"{i}.png")
            kept[spec.shape] += 1
    return root


def ade_folder(root: Path, n: int = 3, size=(64, 64), splits=("training", "validation"), classes=(1, 2, 3)) -> Path:
    """An ADE20K-layout folder: left half class 0 ("other"), right half one of ``classes``."""
    for split in splits:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", size, (40 * i, 90, 0)).save(root / "images" / split / f"ADE_{i}.jpg")
            ann = np.zeros(size[::-1], dtype=np.uint8)
            ann[:, size[0] // 2:] = classes[i % len(classes)]
            Image.fromarray(ann).save(root / "annotations" / split / f"ADE_{i}.png")
    return root


# --- the explorer in a headless browser ---------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# titles and captions whose text does not fit their box, and whether the page scrolls sideways
CLIPPED_JS = """() => ({clipped: [...document.querySelectorAll('.panel-title, .panel-caption')]
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1).map(e => e.innerText),
  sideways: document.documentElement.scrollWidth > window.innerWidth + 1})"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(**launch_kw):
    """The explorer (``milan_lab.app.launch(..., block=False)``) on a free local port; yields its URL."""
    from milan_lab.app import launch
    port = free_port()
    demo = launch(port=port, block=False, **launch_kw)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextmanager
def browser_page(url: str, width: int = 1280, height: int = 720):
    """A headless Chromium page (playwright) on ``url``, loaded; closed on exit. Its default timeout is 60 s:
    a shared 2-core machine can be slow to render the page. Waits for ``load``, not ``networkidle``: the
    panels' first answers stream in."""
    from playwright.sync_api import sync_playwright
    assert CHROMIUM, "no chromium found: scripts/setup.sh --dev installs Debian's package (or set CHROMIUM)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            page.goto(url, wait_until="load", timeout=120_000)
            yield page
        finally:
            browser.close()


def fetch_image(src: str) -> np.ndarray:
    """The image a page shows at ``src`` (a URL), as an RGB array."""
    import io
    import urllib.request
    with urllib.request.urlopen(src, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))
