"""A record holds its provenance (the documents' tables built from records: tests/scripts/test_results_tables.py)."""
import json

from milan_lab.tools.records import write_record


def test_write_record_holds_the_provenance(tmp_path):
    path = write_record(tmp_path / "r.json", "demo", {"x": 1.5}, seeds=(0, 1), wall_s=2.0, command="milan-lab demo")
    record = json.loads(path.read_text())
    assert record["command"] == "milan-lab demo" and record["seeds"] == [0, 1] and record["result"] == {"x": 1.5}
    assert record["matmul_peak_gflops"] > 0 and record["torch"] and record["cpu"] and "date" in record
