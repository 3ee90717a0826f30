"""``milan-lab probe CHECKPOINT``: the registered probes of the shipped model at small sizes, beside a random-init
encoder's; unknown probes and sizes are one line (with the closest known name) before the checkpoint is read."""
import json

import pytest

from milan_lab.cli import main
from tests.helpers import SHIPPED

SMALL = ["--size", "eval_train=48", "--size", "eval_val=24"]


def test_probe_scores_the_chosen_probes_at_the_given_sizes_against_random_init(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("milan_lab.tools.records.matmul_peak_gflops", lambda: 1.0)  # the record's provenance is tested elsewhere
    record = tmp_path / "probe.json"
    assert main(["probe", SHIPPED, "--probes", "knn_cls", "knn_mean", *SMALL, "--json", "--record", str(record)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["probes"] == ["knn_cls", "knn_mean"] and set(r["scores"]) == set(r["random_init"]) == {"knn_cls", "knn_mean"}
    assert r["sizes"]["eval_train"] == 48 and r["sizes"]["eval_val"] == 24
    assert all(0 <= v <= 1 for v in [*r["scores"].values(), *r["random_init"].values()])
    saved = json.loads(record.read_text())
    assert saved["kind"] == "probe" and saved["command"].startswith(f"milan-lab probe {SHIPPED} --probes knn_cls")


def test_probe_prints_one_line_per_metric_without_the_floor_when_told(capsys):
    assert main(["probe", SHIPPED, "--probes", "knn_cls", *SMALL, "--no-baseline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].split()[0] == "knn_cls" and "random init" not in lines[1]


@pytest.mark.parametrize("argv, words", [
    (["--probes", "knn_clss"], ["knn_clss", "did you mean 'knn_cls'", "linear_mean", "attention"]),
    (["--size", "eval_trian=8"], ["eval_trian", "did you mean 'eval_train'", "seg_steps"]),
])
def test_unknown_probes_and_sizes_are_one_line_before_the_checkpoint_is_read(argv, words, capsys):
    assert main(["probe", "no/such/checkpoint.safetensors", *argv]) == 2  # the missing file is never reached
    err = capsys.readouterr().err
    assert err.startswith("milan-lab probe: error:") and len(err.splitlines()) == 1 and all(w in err for w in words)


@pytest.mark.parametrize("item", ["eval_train=0", "eval_train", "=3", "eval_train=x"])
def test_a_malformed_size_is_refused_by_the_parser(item, capsys):
    with pytest.raises(SystemExit) as e:
        main(["probe", SHIPPED, "--size", item])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--size" in err and len(err.splitlines()) == 1
