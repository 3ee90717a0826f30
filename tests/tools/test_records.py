"""Every table in the docs is generated from a record, and says what its record says."""
import json

import pytest

from milan_lab.tools.records import TABLES, _BLOCK, render_tables, write_record
from tests.helpers import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
RESULTS = ROOT / "docs" / "results"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_each_document_agrees_with_its_records(doc):
    text = doc.read_text()
    assert render_tables(text, RESULTS) == text, f"{doc.name}: run `python scripts/results_tables.py` after re-measuring"


def test_every_table_is_used_and_every_record_has_a_command():
    used = {m.group(2) for doc in DOCS for m in _BLOCK.finditer(doc.read_text())}
    assert used == set(TABLES)
    for path in RESULTS.glob("*.json"):
        record = json.loads(path.read_text())
        assert record["command"] and record["commit"] and record["cpu"], path.name


def test_a_changed_record_changes_the_table(tmp_path):
    for path in RESULTS.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    text = "<!-- table: attention -->\n<!-- /table -->"
    before = render_tables(text, tmp_path)
    record = json.loads((tmp_path / "attention_shipped.json").read_text())
    record["result"]["encoder"]["object_ratio"]["mean"] += 1
    (tmp_path / "attention_shipped.json").write_text(json.dumps(record))
    assert render_tables(text, tmp_path) != before


def test_write_record_holds_the_provenance(tmp_path):
    path = write_record(tmp_path / "r.json", "demo", {"x": 1.5}, seeds=(0, 1), wall_s=2.0, command="milan-lab demo")
    record = json.loads(path.read_text())
    assert record["command"] == "milan-lab demo" and record["seeds"] == [0, 1] and record["result"] == {"x": 1.5}
    assert record["matmul_peak_gflops"] > 0 and record["torch"] and record["cpu"] and "date" in record
