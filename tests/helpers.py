"""Shared helpers for tests that run the engines end to end on tiny configs."""
import os
import subprocess
import sys
from pathlib import Path

from milan_lab.data.tokenizer import WordTokenizer
from milan_lab.jobs.teacher import export_teacher
from tests.conftest import TINY_CLIP, make_clip

ROOT = Path(__file__).resolve().parents[1]


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
