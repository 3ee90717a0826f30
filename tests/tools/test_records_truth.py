"""Records say what was measured: the seeds actually used; the tables of a checkout are checked
against that checkout's own records; a damaged record is one line naming its file."""
import importlib.util
import json
import shutil

import pytest

from milan_lab.cli import main
from milan_lab.errors import DataError
from tests.helpers import ROOT

SHIPPED = str(ROOT / "milan_lab" / "assets" / "milan_tiny_offline.safetensors")


def test_attention_record_holds_the_seed_it_was_given(tmp_path, capsys):
    record = tmp_path / "attention.json"
    assert main(["attention", SHIPPED, "-n", "8", "--random-inits", "2", "--seed", "3", "--json",
                 "--record", str(record)]) == 0
    capsys.readouterr()
    saved = json.loads(record.read_text())
    assert saved["seeds"] == [3], saved["seeds"]
    assert saved["result"]["seed"] == 3 and saved["result"]["random_init_seeds"] == [0, 1]


def _second_checkout(tmp_path):
    """A copy of the docs and the tables script, as another checkout of the repository holds them."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "docs", copy / "docs")
    (copy / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "results_tables.py", copy / "scripts")
    return copy


def _tables(script, *args, capsys) -> tuple[int, str, str]:
    """Run a copy of scripts/results_tables.py in this process, as ``python SCRIPT ARGS`` would."""
    spec = importlib.util.spec_from_file_location(f"results_tables_{abs(hash(str(script)))}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_results_tables_check_reads_its_own_checkout(tmp_path, capsys):
    copy = _second_checkout(tmp_path)
    script = copy / "scripts" / "results_tables.py"
    assert _tables(script, "--check", capsys=capsys)[0] == 0
    path = copy / "docs" / "results" / "attention_shipped.json"
    record = json.loads(path.read_text())
    record["result"]["encoder"]["object_ratio"]["mean"] += 1  # this checkout's record changed, not the installed one's
    path.write_text(json.dumps(record))
    for argv in ([script, "--check"], [ROOT / "scripts" / "results_tables.py", "--check", "--root", str(copy)]):
        code, out, err = _tables(*argv, capsys=capsys)
        assert code == 1 and "differ from their records" in out, (argv, out, err)


def test_a_damaged_record_is_one_line_naming_it(tmp_path, capsys):
    copy = _second_checkout(tmp_path)
    path = copy / "docs" / "results" / "knn_shipped.json"
    path.write_text(path.read_text()[:40])  # truncated mid-way
    code, _, err = _tables(copy / "scripts" / "results_tables.py", "--check", capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "knn_shipped.json" in lines[0], err
    from milan_lab.tools.records import read_record
    with pytest.raises(DataError, match="knn_shipped.json: a damaged record"):
        read_record("knn_shipped", copy / "docs" / "results")
    with pytest.raises(DataError, match="nothing.json: no such record"):
        read_record("nothing", copy / "docs" / "results")


def test_the_package_does_not_locate_the_docs():
    from milan_lab.tools import records
    assert not hasattr(records, "RESULTS")
    source = (ROOT / "milan_lab" / "tools" / "records.py").read_text()
    assert '"docs"' not in source and "parents[2]" not in source
