"""Records of measurements: every measuring command can write one (``--record FILE``) with
:func:`write_record`, and :func:`read_record` reads one back.

A record holds where the numbers come from (command line, commit, machine, a matmul peak measured
in the same run, torch, threads, date), the seeds, the wall-clock, and the numbers themselves. What a
repository makes of its records (the tables of its documents) is the repository's business, not the
package's: the package neither renders those tables nor knows where a checkout keeps its records.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from milan_lab.errors import DataError
from milan_lab.io.targets import check_writable
from milan_lab.io.weights import atomic_write


def code_changes(porcelain: str) -> list[str]:
    """The changed tracked paths of ``git status --porcelain`` output that can change a measurement: every one but
    the records themselves (``*.json`` in a folder named ``results``), so that re-measuring several records in a
    row from one commit leaves each of them clean (the second is written after the first has changed the tree)."""
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in porcelain.splitlines() if line.strip()]
    return [p for p in paths if not (p.endswith(".json") and "results" in p.split("/")[:-1])]


def shown_path(path: str | Path, root: str | Path) -> str:
    """A path as a record names it: relative to ``root`` (the caller's checkout) when inside it, so that a record
    reads the same on every machine; otherwise as given."""
    resolved, root = Path(path).resolve(), Path(root).resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(path)


def provenance(command: str | None = None) -> dict:
    """Where a measurement comes from: the command line, the code's commit, the machine (CPU model, cores, the
    instruction set torch's CPU kernels run with, GPU), torch and its threads, and the date. Every benchmark record
    starts with it. The instruction set is kept because floating-point sums may run in another order on a CPU with
    AVX-512 and on one without, and so score the same encoder a little differently (benchmarks/score_repeat.py
    measures whether they do)."""
    import platform
    import subprocess
    import sys
    from datetime import datetime, timezone
    from pathlib import Path
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
        dirty = bool(code_changes(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                                 text=True, timeout=10, cwd=Path(__file__).resolve().parent).stdout))
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import os
    if command is None:  # as a user would type it again: `milan-lab ...` or `python benchmarks/x.py ...`
        script = Path(sys.argv[0])
        if script.name in ("__main__.py", "milan-lab"):
            program = "milan-lab"
        elif script.suffix == ".py":
            try:
                program = f"python {script.resolve().relative_to(Path.cwd())}"
            except ValueError:
                program = f"python {script}"
        else:
            program = script.name
        command = " ".join([program] + sys.argv[1:])
    return {"command": command, "commit": commit, "uncommitted_changes": dirty,
            "cpu": cpu, "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_record(path: str | Path, kind: str, result: dict, seeds=(0,), wall_s: float | None = None,
                 peak: bool | float = True, command: str | None = None) -> Path:
    """Write ``result`` with its provenance to ``path`` (JSON, atomically); ``peak``: also measure
    the fp32 (CPU) or bf16 (GPU) matmul peak now (:func:`matmul_peak_gflops`), so that times can be
    read against the machine; a number: that peak, measured earlier in the same run (a study that
    rewrites its record after every run measures it once)."""
    path = check_writable(path, "record")  # before the peak is measured (the caller checks before its own work)
    record = {**provenance(command), "kind": kind, "seeds": list(seeds), "wall_s": wall_s}
    if peak is not False:
        record["matmul_peak_gflops"] = matmul_peak_gflops() if peak is True else float(peak)
    record["result"] = result
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1, default=float)))
    return path


def matmul_peak_gflops() -> float:
    """The fp32 (CPU) or bf16 (GPU) matmul peak of this machine now, in GFLOP/s."""
    from milan_lab.tools.bench import measure_peak  # the step benchmark's own peak measurement
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return measure_peak(device, torch.bfloat16 if device.type == "cuda" else torch.float32) / 1e9


def measure_and_record(record: str | Path | None, kind: str, work: Callable[[], dict], table: Callable[[dict], str],
                       seeds=(0,)) -> dict:
    """A benchmark script's measurement once its options are checked: ``work()`` timed, with ``record``
    (``--record FILE``) the result written there with its provenance, then ``table(result)`` printed (and
    ``record: PATH`` after it). The record's place is checked and the machine's matmul peak measured before
    the work, so that an unwritable record fails at once rather than after the measurement; the record is
    written before the table is rendered, so that a renderer that fails loses no measurement (its error
    still surfaces). Returns the result."""
    peak = False
    if record:
        record = check_writable(record, "record")
        peak = matmul_peak_gflops()
    with Timer() as wall:
        result = work()
    written = write_record(record, kind, result, seeds, wall.seconds, peak=peak) if record else None
    print(table(result))
    if written:
        print(f"record: {written}")
    return result


class RunningRecord:
    """The record of a long measurement, rewritten after every finished run so that a stopped study keeps what
    it finished: its place is checked and the machine's matmul peak measured once, when it is opened (before
    the runs); each :meth:`write` carries the seconds since then.

        record = RunningRecord(path, "time-to-quality")
        for ...: results.append(run(...)); record.write({...}, seeds)
    """

    def __init__(self, path: str | Path, kind: str):
        self.path, self.kind = check_writable(path, "record"), kind
        self.peak = matmul_peak_gflops()
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def write(self, result: dict, seeds) -> Path:
        """Write ``result`` now (the whole record, replacing the last one)."""
        return write_record(self.path, self.kind, result, list(seeds), self.seconds, peak=self.peak)


class Timer:
    """Wall-clock of a block: ``with Timer() as t: ...; t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def read_record(name: str, folder: str | Path) -> dict:
    """The record ``folder/NAME.json``; a missing or damaged one is one DataError naming the file."""
    path = Path(folder) / f"{name}.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: no such record (a table reads it; measure it with --record {path})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable record ({type(e).__name__}: {e})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: a damaged record, not JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                        f"restore it (git checkout) or measure it again") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: a damaged record (JSON {type(record).__name__}, not an object)")
    return record
