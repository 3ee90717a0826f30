"""The model factory (factory/models.py): a resume into an output_dir whose checkpoints are of another
architecture is refused naming the folder and the differing key, before anything is overwritten."""
import pytest

from milan_lab.config import get_config
from milan_lab.errors import CheckpointError
from tests.helpers import MICRO, tiny_overrides


def test_resume_into_an_output_dir_of_another_architecture(teacher_dir, tmp_path):
    from milan_lab.jobs.pretrain import pretrain
    out = tmp_path / "run"
    pretrain(get_config("pretrain", MICRO, tiny_overrides(teacher_dir, out, max_steps=2)))
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    wider = get_config("pretrain", MICRO, tiny_overrides(teacher_dir, out, max_steps=4, embed_dim=24, num_heads=3))
    with pytest.raises(CheckpointError, match="embed_dim") as refused:
        pretrain(wider)
    assert str(out) in str(refused.value) and len(str(refused.value).splitlines()) == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
