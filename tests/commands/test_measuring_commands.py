"""What the measuring commands share (commands.common): --json and --record, and their run (report)."""
import json

import pytest

from milan_lab.commands.common import OneLineParser, measuring_options, report


def _args(*argv):
    p = OneLineParser(prog="demo")
    measuring_options(p, run=lambda args: None)
    args = p.parse_args(list(argv))
    args.argv = ["demo", *argv]
    return args


def test_report_prints_the_text_or_json_and_records_what_it_measured(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("milan_lab.tools.records.matmul_peak_gflops", lambda: 1.0)
    result = {"knn_top1": 0.5}
    assert report(_args(), "demo", lambda: result, lambda r: f"kNN {r['knn_top1']}") == result
    assert capsys.readouterr().out == "kNN 0.5\n"
    path = tmp_path / "r.json"
    report(_args("--json", "--record", str(path)), "demo", lambda: result, lambda r: "not this", seeds=(4,))
    out = capsys.readouterr()
    assert json.loads(out.out) == result and f"record: {path}" in out.err
    record = json.loads(path.read_text())
    assert record["kind"] == "demo" and record["seeds"] == [4] and record["result"] == result
    assert record["command"] == f"milan-lab demo --json --record {path}"


def test_measuring_options_set_the_commands_run_and_check_the_record_before_any_work(tmp_path, capsys):
    args = _args()
    assert args.json is False and args.record is None and callable(args.run)
    p = OneLineParser(prog="demo")
    measuring_options(p, run=lambda args: None)
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--record", str(tmp_path)])  # a folder: refused by the option's type
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("demo: error: argument --record") and str(tmp_path) in err and len(err.strip().splitlines()) == 1
