"""A record holds its provenance (the documents' tables built from records: tests/scripts/test_results_tables.py)."""
import json

import pytest
import torch

from milan_lab.tools.records import code_changes, write_record


def test_write_record_holds_the_provenance(tmp_path):
    path = write_record(tmp_path / "r.json", "demo", {"x": 1.5}, seeds=(0, 1), wall_s=2.0, command="milan-lab demo")
    record = json.loads(path.read_text())
    assert record["command"] == "milan-lab demo" and record["seeds"] == [0, 1] and record["result"] == {"x": 1.5}
    assert record["matmul_peak_gflops"] > 0 and record["torch"] and record["cpu"] and "date" in record
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # the kernels' instruction set


def test_measure_and_record_refuses_an_unwritable_record_before_the_peak_and_the_work(tmp_path, monkeypatch):
    from milan_lab.errors import OutputError
    from milan_lab.tools import records

    def boom():
        raise AssertionError("measured before the record's place was checked")
    monkeypatch.setattr(records, "matmul_peak_gflops", boom)
    with pytest.raises(OutputError, match="record .*: is a folder"):
        records.measure_and_record(tmp_path, "demo", boom, str)


def test_measure_and_record_measures_the_peak_first_then_prints_the_table_and_writes_the_record(tmp_path, monkeypatch,
                                                                                                capsys):
    from milan_lab.tools import records
    calls = []
    monkeypatch.setattr(records, "matmul_peak_gflops", lambda: calls.append("peak") or 12.5)

    def work():
        calls.append("work")
        return {"x": 1.5}
    result = records.measure_and_record(tmp_path / "r.json", "demo", work, lambda r: f"| x | {r['x']} |", seeds=[3])
    out = capsys.readouterr().out
    assert result == {"x": 1.5} and calls == ["peak", "work"]
    assert out.splitlines() == ["| x | 1.5 |", f"record: {tmp_path / 'r.json'}"]
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["kind"] == "demo" and record["seeds"] == [3] and record["matmul_peak_gflops"] == 12.5
    assert record["result"] == result and record["wall_s"] >= 0
    calls.clear()  # without a record: the table only, no peak
    records.measure_and_record(None, "demo", work, lambda r: "table")
    assert calls == ["work"] and capsys.readouterr().out == "table\n"


def test_a_running_record_checks_its_place_and_measures_the_peak_once_when_opened(tmp_path, monkeypatch):
    from milan_lab.errors import OutputError
    from milan_lab.tools import records
    peaks = []
    monkeypatch.setattr(records, "matmul_peak_gflops", lambda: peaks.append(1) or 42.0)
    with pytest.raises(OutputError, match="record .*: is a folder"):
        records.RunningRecord(tmp_path, "demo")
    assert peaks == []  # refused before the peak
    running = records.RunningRecord(tmp_path / "r.json", "demo")
    running.write({"runs": [1]}, {0: None})
    first = json.loads((tmp_path / "r.json").read_text())
    running.write({"runs": [1, 2]}, [0, 1])
    last = json.loads((tmp_path / "r.json").read_text())
    assert peaks == [1] and first["matmul_peak_gflops"] == last["matmul_peak_gflops"] == 42.0
    assert first["seeds"] == [0] and last["seeds"] == [0, 1] and last["result"] == {"runs": [1, 2]}
    assert last["kind"] == "demo" and last["wall_s"] >= first["wall_s"] >= 0


def test_a_table_renderer_that_fails_leaves_the_record_written_and_its_error_surfaces(tmp_path, monkeypatch):
    from milan_lab.tools import records
    monkeypatch.setattr(records, "matmul_peak_gflops", lambda: 12.5)

    def table(result):
        raise KeyError("a renderer's bug")
    with pytest.raises(KeyError, match="a renderer's bug"):
        records.measure_and_record(tmp_path / "r.json", "demo", lambda: {"x": 1.5}, table)
    assert json.loads((tmp_path / "r.json").read_text())["result"] == {"x": 1.5}


def test_records_changed_by_earlier_measurements_do_not_make_the_code_dirty():
    """Re-measuring several records from one commit: the records already rewritten are not code changes;
    anything else is, a JSON file outside a results folder (a model config) included."""
    porcelain = (" M docs/results/knn_shipped.json\n M docs/results/attention_shipped.json\n"
                 "R  docs/results/old.json -> docs/results/new.json\n")
    assert code_changes(porcelain) == []
    assert code_changes(porcelain + " M milan_lab/tools/records.py\n") == ["milan_lab/tools/records.py"]
    assert code_changes(" M milan_lab/assets/model_configs/milan-clip-tiny.json\n") == [
        "milan_lab/assets/model_configs/milan-clip-tiny.json"]
    assert code_changes(" M results.json\n") == ["results.json"]  # a file named so, not a record folder
