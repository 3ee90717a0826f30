"""The engine's files (metrics.json, the metrics log a resume truncates) and a study run's result.json (the mark of
a finished run) are written through ``atomic_write``: a writer killed or failing midway leaves the old file whole
under its name, never part of the new one, and no temporary that ``remove_stale_temporaries`` (run when a run
resumes) would not clear."""
import csv
import json
import multiprocessing
import os
import pathlib
import signal
import time

import pytest

from milan_lab.engine.common import MetricsLog, write_json
from milan_lab.io.weights import remove_stale_temporaries

OLD = {"summary": {"steps": 1, "final_loss": 1.0}, "rows": list(range(10))}
NEW = {"summary": {"steps": 2, "final_loss": 0.5}, "rows": list(range(20_000))}

def _half_then_wait(kind: str, target: pathlib.Path, halfway) -> None:
    """In the child: write ``kind``'s new file, but stop halfway through its bytes (flushed to disk), say so
    and wait there to be killed."""
    def wait():
        halfway.set()
        time.sleep(120)

    if kind in ("write_json", "write_result"):
        real = pathlib.Path.write_text

        def half_text(self, text, *a, **k):
            real(self, text[:len(text) // 2])
            wait()

        pathlib.Path.write_text = half_text
        if kind == "write_json":
            write_json(target, NEW)
        else:
            from milan_lab.evaluation.suite import write_result
            write_result(target, NEW)
    else:
        real_init = csv.DictWriter.__init__

        def remember(self, f, *a, **k):
            self._file = f
            real_init(self, f, *a, **k)

        def half_rows(self, rows):
            rows = list(rows)
            for row in rows[:len(rows) // 2]:
                self.writerow(row)
            self._file.flush()
            wait()

        csv.DictWriter.__init__, csv.DictWriter.writerows = remember, half_rows
        MetricsLog(target, purge_after=5)


def _log_rows(n: int) -> list[dict]:
    return [{"step": s, "epoch": s / 10, "loss": 1 / s, "lr": 1e-3} for s in range(1, n + 1)]


def _write_old(kind: str, target: pathlib.Path) -> bytes:
    if kind != "truncate_after":
        target.write_text(json.dumps(OLD))
    else:
        log = MetricsLog(target)
        for row in _log_rows(400):
            log.log(row)
    return target.read_bytes()


@pytest.mark.parametrize("kind", ["write_json", "truncate_after", "write_result"])
def test_a_writer_killed_midway_leaves_the_old_file_whole(kind, tmp_path):
    target = tmp_path / {"write_json": "metrics.json", "truncate_after": "metrics.csv", "write_result": "result.json"}[kind]
    old = _write_old(kind, target)
    # a forked process (the modules already imported: no second torch import), killed with SIGKILL mid-write
    fork = multiprocessing.get_context("fork")
    halfway = fork.Event()
    child = fork.Process(target=_half_then_wait, args=(kind, target, halfway))
    child.start()
    try:
        assert halfway.wait(timeout=60)  # the new bytes are half on disk
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.join(timeout=60)
    assert target.read_bytes() == old  # the old file, whole, under its name
    remove_stale_temporaries(tmp_path)  # what a resumed run does first
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_failed_write_json_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json(target, OLD)
    real = pathlib.Path.write_text

    def fails_halfway(self, text, *a, **k):
        real(self, text[:len(text) // 2])
        raise OSError("I/O error")

    monkeypatch.setattr(pathlib.Path, "write_text", fails_halfway)
    with pytest.raises(OSError):
        write_json(target, NEW)
    monkeypatch.undo()
    assert json.loads(target.read_text()) == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    write_json(target, NEW)  # and a later write replaces it whole
    assert json.loads(target.read_text()) == NEW


def test_a_failed_truncation_keeps_the_whole_log(tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    old = _write_old("truncate_after", target)
    real_init = csv.DictWriter.__init__

    def remember(self, f, *a, **k):
        self._file = f
        real_init(self, f, *a, **k)

    def fails_halfway(self, rows):  # the kept rows half written (and flushed), then an I/O error
        rows = list(rows)
        for row in rows[:len(rows) // 2]:
            self.writerow(row)
        self._file.flush()
        raise OSError("I/O error")

    monkeypatch.setattr(csv.DictWriter, "__init__", remember)
    monkeypatch.setattr(csv.DictWriter, "writerows", fails_halfway)
    with pytest.raises(OSError):
        MetricsLog(target, purge_after=5)
    monkeypatch.undo()
    assert target.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]
    assert [int(r["step"]) for r in MetricsLog(target, purge_after=5).read()] == [1, 2, 3, 4, 5]
