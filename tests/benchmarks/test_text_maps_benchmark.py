"""benchmarks/text_maps.py: the localisation record of the text-prompt maps, its table, and its options."""
import importlib.util
import json
import sys

import pytest

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))  # the documents' tables (scripts/ is a folder of scripts)
import tables  # noqa: E402


def _script():
    spec = importlib.util.spec_from_file_location("text_maps_script", ROOT / "benchmarks" / "text_maps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tiny_run_prints_its_table_and_writes_a_record_the_docs_table_reads(tmp_path, capsys):
    rec = tmp_path / "results" / "text_maps.json"
    rec.parent.mkdir()
    script = _script()
    assert script.main(["--scenes", "4", "--seeds", "0", "1", "--variants", "sparse", "--forms", "caption", "colour",
                        "--record", str(rec)]) == 0
    out = capsys.readouterr().out
    record = json.loads(rec.read_text())
    assert record["kind"] == "text-maps" and record["seeds"] == [0, 1] and record["matmul_peak_gflops"] > 0
    r = record["result"]
    assert list(r["variants"]) == ["sparse"] and list(r["variants"]["sparse"]["by_seed"]) == ["0", "1"]
    cell = r["variants"]["sparse"]["all_seeds"]["colour"]["maskclip"]
    assert cell["n"] == 8 and 0 <= cell["mean"] <= 1 and 0 <= cell["above_half"] <= 1
    assert set(r["variants"]["sparse"]["all_seeds"]["caption"]) == {"target tokens", "maskclip", "predicted tokens"}
    assert script.table(r) in out
    table = tables.render_tables("<!-- table: text-maps -->\n<!-- /table -->", rec.parent)
    assert "| sparse | colour |" in table and "4 validation scenes per kind and seed (seeds 0, 1)" in table


@pytest.mark.parametrize("args, words", [(["--scenes", "0"], "--scenes"), (["--forms", "a cat"], "--forms"),
                                         (["--seeds", "-1"], "--seeds"), (["--variants", "striped"], "--variants")])
def test_a_bad_option_is_one_line_before_the_work(monkeypatch, capsys, args, words):
    script = _script()
    monkeypatch.setattr(script, "run", lambda *a, **k: pytest.fail("the work started"))
    with pytest.raises(SystemExit) as stop:
        script.main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("text_maps: error: argument ") and words in err and err.count("\n") == 1


def test_every_scene_kind_is_measured_by_default():
    from milan_lab.config import SCENE_KINDS
    assert _script().VARIANTS == tuple(SCENE_KINDS) and "mid" in _script().VARIANTS
