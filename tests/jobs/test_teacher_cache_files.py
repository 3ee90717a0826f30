"""The teacher cache and fixed views on image folders take DecodeCrop's decoder (DecodeView), not the PIL chain."""
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from milan_lab.config import get_config
from milan_lab.data.datasets import ClassFolder
from milan_lab.data.jpeg_corpus import make_jpeg_corpus
from milan_lab.data.transforms import DecodeView, denormalize, eval_transform, normalize_uint8
from milan_lab.factory.teachers import load_teacher
from milan_lab.jobs.pretrain import train_view
from milan_lab.jobs.teacher_cache import TeacherCache, WithIndex
from tests.helpers import tiny_overrides

SIZE = 32


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_jpeg_corpus(tmp_path_factory.mktemp("jpegs") / "corpus", n=32, classes=2, seed=0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.mark.parametrize("size", [32, 96])  # 32: reduced DCT decodes (the photos have 8x the side); 96: simplejpeg
def test_fixed_views_of_files_match_the_pil_chain_within_35_db(corpus, size):
    old = ClassFolder(str(corpus), eval_transform(size, crop_ratio=1.0))
    new = ClassFolder(str(corpus), DecodeView(size))
    assert new.uint8_images and not old.uint8_images
    for i in range(len(old)):
        a = denormalize(old[i][0])
        view = new[i][0]
        assert view.dtype == torch.uint8 and view.shape == (3, size, size)
        b = denormalize(normalize_uint8(view[None], "cpu")[0])
        assert psnr(a, b) > 35, i  # bicubic kernels (PIL vs torch's antialiased) and JPEG decoders differ slightly


def test_the_default_preset_reads_folders_through_the_fast_decoder(corpus, teacher_dir, tmp_path):
    cfg = get_config("pretrain", None, [f"data={corpus}"])  # the default preset: teacher_cache=true
    assert cfg.teacher_cache and isinstance(train_view(cfg), DecodeView)
    assert isinstance(train_view(get_config("pretrain", None, [f"data={corpus}", "teacher_cache=false",
                                                                "fixed_views=true"])), DecodeView)
    assert not isinstance(train_view(get_config("pretrain", None)), DecodeView)  # offline scenes: PIL in memory


def test_cached_targets_from_files_match_the_pil_views(corpus, teacher_dir):
    teacher = load_teacher(str(teacher_dir)).eval()
    caches = [TeacherCache(teacher, WithIndex(ClassFolder(str(corpus), view)), torch.device("cpu"), nullcontext)
              for view in (eval_transform(SIZE, crop_ratio=1.0), DecodeView(SIZE))]
    for c in caches:
        c.fill()
    (t_old, imp_old), (t_new, imp_new) = [(c.targets, c.importance) for c in caches]
    cos = torch.nn.functional.cosine_similarity(t_old, t_new, dim=-1)
    assert cos.min() > 0.99, cos.min()
    assert torch.allclose(imp_old, imp_new, atol=0.02)


def test_pretraining_with_the_cache_on_a_folder_reads_files_through_decode_view(corpus, teacher_dir, tmp_path,
                                                                              monkeypatch):
    import milan_lab.data.datasets as datasets
    import milan_lab.data.transforms as transforms
    from milan_lab.jobs.pretrain import pretrain
    opened = []
    real = transforms.open_image
    monkeypatch.setattr(transforms, "open_image", lambda path, **kw: opened.append(path) or real(path, **kw))

    def pil_chain(*args, **kwargs):
        raise AssertionError("a training image went through the PIL chain")
    monkeypatch.setattr(datasets, "load_image", pil_chain)
    cfg = get_config("pretrain", "milan_vit-micro-p8_offline",
                     tiny_overrides(teacher_dir, tmp_path / "run", data=str(corpus), teacher_cache=True,
                                    min_crop_scale=1.0, epochs=2, checkpoint_every=4))
    summary = pretrain(cfg)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    assert len(opened) == 32 + 2 * 32  # the cache's pass, then the two epochs' views
