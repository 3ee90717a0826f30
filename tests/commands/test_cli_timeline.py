"""``milan-lab timeline RUN``: a run's snapshots scored, printed and drawn; a run without snapshots or an output
that cannot be written is one line, before any scoring."""
import json

import pytest

from milan_lab.cli import main
from milan_lab.config import get_config
from milan_lab.jobs.pretrain import pretrain
from tests.helpers import MICRO, tiny_overrides

SMALL = ["--knn-train", "64", "--knn-val", "32", "--scenes", "8"]


@pytest.fixture(scope="module")
def run_dir(teacher_dir, tmp_path_factory):
    """4 steps (64 scenes, batch 16, 1 epoch) of a 32-px model, a snapshot every 2."""
    out = tmp_path_factory.mktemp("run")
    pretrain(get_config("pretrain", MICRO,
                        tiny_overrides(teacher_dir, out, offline_size=64, epochs=1, keep_every=2, checkpoint_every=4)))
    return out


def test_timeline_prints_a_line_per_snapshot_and_writes_the_figure_beside_the_run(run_dir, capsys):
    assert main(["timeline", str(run_dir), *SMALL]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("  step")] == ["2", "4"]
    assert lines[-1] == f"figure: {run_dir / 'timeline.png'}" and (run_dir / "timeline.png").stat().st_size > 10_000


def test_timeline_json_and_out(run_dir, tmp_path, capsys):
    out = tmp_path / "figs" / "t.png"
    assert main(["timeline", str(run_dir), *SMALL, "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in result["rows"]] == [2, 4] and result["figure"] == str(out) and out.is_file()
    assert result["knn_val"] == 32 and result["scenes"] == 8


def test_timeline_refuses_a_run_without_snapshots_and_a_folder_as_out(run_dir, tmp_path, capsys):
    assert main(["timeline", str(tmp_path), *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.startswith("milan-lab timeline: error:") and "keep_every" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:  # argparse's check, before the run is even looked at
        main(["timeline", str(run_dir), "--out", str(tmp_path)])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    assert main(["timeline", str(tmp_path / "missing")]) == 2 and "no such run folder" in capsys.readouterr().err
