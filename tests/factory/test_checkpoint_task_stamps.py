"""Every file milan-lab writes with weights stores its task: a timeline snapshot (an encoder-only file: the
factory's "pretrain") and a saved dense probe (``seg_probe``, which the factory refuses to load as a model)."""
import dataclasses

import pytest

from milan_lab.config import get_config
from milan_lab.errors import CheckpointError
from milan_lab.factory.models import checkpoint_task, create_model, load_encoder, load_model
from milan_lab.io import timeline
from milan_lab.io.weights import read_weights
from tests.helpers import MICRO



def test_a_timeline_snapshot_stores_the_task_pretrain(tmp_path):
    cfg = get_config("pretrain", MICRO)
    model = create_model(cfg.model, "pretrain", teacher="none")
    path = timeline.save_snapshot(tmp_path, 3, model.encoder.state_dict(), dataclasses.asdict(cfg))
    state = read_weights(path)
    assert state["task"] == "pretrain" == checkpoint_task(state, path)
    load_encoder(path, cfg.model)  # still an encoder-only checkpoint


def test_a_saved_dense_probe_stores_its_task_and_is_no_model(tmp_path):
    from milan_lab.evaluation.probes import PROBE_TASK, seg_probe_eval
    out = tmp_path / "probe.safetensors"
    seg_probe_eval("random", MICRO, train_size=4, val_size=2, steps=1, out=out)
    assert read_weights(out)["task"] == PROBE_TASK
    with pytest.raises(CheckpointError, match="seg_probe") as err:
        load_model(out)
    assert "probe.safetensors" in str(err.value)
