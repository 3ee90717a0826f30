import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "agg")

import dataclasses  # noqa: E402

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


def replace(cfg, **kw):
    return dataclasses.replace(cfg, **kw)
