import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "agg")

import dataclasses  # noqa: E402
import subprocess  # noqa: E402

import open_clip  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from milan_lab.config import ModelConfig  # noqa: E402
from milan_lab.models.teacher import Teacher  # noqa: E402
from milan_lab.data.tokenizer import WordTokenizer  # noqa: E402

TINY_CLIP = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=32),
                 text_cfg=dict(context_length=12, vocab_size=33, width=32, heads=2, layers=1))


def make_clip(seed: int = 0, quick_gelu: bool = False):
    torch.manual_seed(seed)
    return open_clip.CLIP(**TINY_CLIP, quick_gelu=quick_gelu)


@pytest.fixture
def tiny_teacher():
    """A randomly initialised open_clip CLIP at 32 px / patch 8 (16 patches)."""
    return Teacher(make_clip(), WordTokenizer(), name="tiny-random")


@pytest.fixture
def tiny_cfg():
    return ModelConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, decoder_embed_dim=32,
                       decoder_depth=2, decoder_num_heads=2, target_dim=32, teacher="tiny", teacher_pretrained=None)


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
    """A randomly initialised 32-px open_clip teacher exported as a local-dir folder, made once per session
    (the runs only read it)."""
    from tests.helpers import tiny_teacher_folder
    return tiny_teacher_folder(tmp_path_factory.mktemp("teacher") / "tiny")


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount rights; skipped with the reason otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def replace(cfg, **kw):
    return dataclasses.replace(cfg, **kw)
