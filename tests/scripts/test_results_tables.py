"""scripts/results_tables.py and scripts/tables.py: every table in the docs is generated from a record and says
what its record says; the tables of a checkout are checked against that checkout's own records; a damaged record
is one line naming its file; the renderers live beside the documents, not in the installed package."""
import importlib.util
import json
import shutil
import sys

import pytest

from tests.helpers import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
RESULTS = ROOT / "docs" / "results"


def _load(script, name):
    """A script of a checkout as a module, by its path (scripts/ is not a package), as ``python SCRIPT`` runs it:
    results_tables.py finds tables.py beside its own file, not on sys.path, whatever the working folder."""
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(str(script)))}", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tables = _load(ROOT / "scripts" / "tables.py", "tables")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_each_document_agrees_with_its_records(doc):
    text = doc.read_text()
    assert tables.render_tables(text, RESULTS) == text, f"{doc.name}: run `python scripts/results_tables.py` after re-measuring"


def test_every_table_is_used_and_every_record_has_a_command():
    used = {m.group(2) for doc in DOCS for m in tables._BLOCK.finditer(doc.read_text())}
    assert used == set(tables.TABLES)
    for path in RESULTS.glob("*.json"):
        record = json.loads(path.read_text())
        assert record["command"] and record["commit"] and record["cpu"], path.name


def test_a_changed_record_changes_the_table(tmp_path):
    for path in RESULTS.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    text = "<!-- table: attention -->\n<!-- /table -->"
    before = tables.render_tables(text, tmp_path)
    record = json.loads((tmp_path / "attention_shipped.json").read_text())
    record["result"]["encoder"]["object_ratio"]["mean"] += 1
    (tmp_path / "attention_shipped.json").write_text(json.dumps(record))
    assert tables.render_tables(text, tmp_path) != before


def test_a_record_made_with_uncommitted_changes_says_so_under_its_table(tmp_path):
    for path in RESULTS.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    text = "<!-- table: attention -->\n<!-- /table -->"
    record = json.loads((tmp_path / "attention_shipped.json").read_text())
    for dirty in (False, True):
        record["uncommitted_changes"] = dirty
        (tmp_path / "attention_shipped.json").write_text(json.dumps(record))
        said = f"commit {record['commit']} with uncommitted changes." in tables.render_tables(text, tmp_path)
        assert said is dirty


def test_an_unknown_table_names_itself_and_the_known_ones():
    with pytest.raises(KeyError, match="'no-such'.*probes"):
        tables.render_tables("<!-- table: no-such -->\n<!-- /table -->", RESULTS)


def test_the_package_holds_no_table_of_the_documents():
    """The documents' tables and their prose are the repository's: no module of the installed package renders them."""
    from milan_lab.tools import records
    assert not {"TABLES", "render_tables", "_BLOCK", "table_probes"} & set(vars(records))
    assert not [p for p in (ROOT / "milan_lab").rglob("*.py") if "<!-- table:" in p.read_text()]


def _second_checkout(tmp_path):
    """A copy of the docs, the tables scripts and the benchmarks, as another checkout of the repository holds them."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "docs", copy / "docs")
    (copy / "scripts").mkdir()
    for name in ("results_tables.py", "tables.py"):
        shutil.copy(ROOT / "scripts" / name, copy / "scripts")
    shutil.copytree(ROOT / "benchmarks", copy / "benchmarks", ignore=shutil.ignore_patterns("plans", "__pycache__"))
    return copy


def _tables(script, *args, capsys) -> tuple[int, str, str]:
    """Run a copy of scripts/results_tables.py in this process, as ``python SCRIPT ARGS`` would."""
    code = _load(script, "results_tables").main(list(args))
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
    code, out, _ = _tables(script, capsys=capsys)  # without --check: the copy's document is rewritten from its record
    assert code == 0 and out.strip() == "rewritten: results.md", out
    assert (ROOT / "docs" / "results.md").read_text() != (copy / "docs" / "results.md").read_text()


def test_a_damaged_record_is_one_line_naming_it(tmp_path, capsys):
    copy = _second_checkout(tmp_path)
    path = copy / "docs" / "results" / "knn_shipped.json"
    path.write_text(path.read_text()[:40])  # truncated mid-way
    code, _, err = _tables(copy / "scripts" / "results_tables.py", "--check", capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "knn_shipped.json" in lines[0], err
