"""Records say what was measured: the seeds actually used; a damaged record is one line naming its file;
the package does not know where a checkout keeps its records."""
import json

import pytest

from milan_lab.cli import main
from milan_lab.errors import DataError
from milan_lab.tools.records import read_record
from tests.helpers import ROOT, SHIPPED


def test_attention_record_holds_the_seed_it_was_given(tmp_path, capsys):
    record = tmp_path / "attention.json"
    assert main(["attention", SHIPPED, "-n", "8", "--random-inits", "2", "--seed", "3", "--json",
                 "--record", str(record)]) == 0
    capsys.readouterr()
    saved = json.loads(record.read_text())
    assert saved["seeds"] == [3], saved["seeds"]
    assert saved["result"]["seed"] == 3 and saved["result"]["random_init_seeds"] == [0, 1]


def test_a_damaged_or_missing_record_is_one_data_error_naming_it(tmp_path):
    path = tmp_path / "knn_shipped.json"
    path.write_text((ROOT / "docs" / "results" / "knn_shipped.json").read_text()[:40])  # truncated mid-way
    with pytest.raises(DataError, match="knn_shipped.json: a damaged record"):
        read_record("knn_shipped", tmp_path)
    with pytest.raises(DataError, match="nothing.json: no such record"):
        read_record("nothing", tmp_path)


def test_the_package_does_not_locate_the_docs():
    from milan_lab.tools import records
    assert not hasattr(records, "RESULTS")
    source = (ROOT / "milan_lab" / "tools" / "records.py").read_text()
    assert '"docs"' not in source and "parents[2]" not in source
