"""Latency of each explorer interaction (the app's tabs call the same methods) with the default (shipped)
models: median and worst of ``--repeats`` calls after one warm-up; prints figures and writes a record.

    python benchmarks/app_latency.py [--repeats 5] [--size 256] [--record outputs/bench/app_latency.json]

A user waits for the load once per app start and for one interaction per click; the figures are
read next to the machine's matmul peak, measured in the same run and kept in the record.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

# Only light modules here: a refused option answers at once; torch and the models load when the work starts.
from milan_lab.cli import OneLineParser, output_file, positive_int

PROMPTS = ["a star", "a ring", "a red shape"]


def timed(fn, repeats: int = 5) -> dict:
    """Median and worst wall-clock (ms) of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_ms": 1e3 * statistics.median(times), "max_ms": 1e3 * max(times), "repeats": repeats}


def table(result: dict) -> str:
    """The table of a result: the script prints it, and the document's table (scripts/tables.py) is the same."""
    rows = ["| explorer interaction (the app's tabs) | median | worst |", "| --- | --- | --- |",
            f"| load the teacher and the shipped model (once per app start) | {result['load_s']:.2f} s | - |"]
    rows += [f"| {name}, {result['image_size']} px scene | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms |"
             for name, r in result["interactions"].items()]
    return "\n".join(rows)


def measure(size: int, repeats: int) -> dict:
    """Load the explorer's default models, then time each interaction on one ``size``-px scene."""
    from milan_lab.data.scenes import make_scene
    from milan_lab.tools.records import Timer
    from milan_lab.viz.panels import Explorer
    with Timer() as load:
        ex = Explorer.from_defaults()
    image = make_scene(0, "test", 0, size)[0]
    cases = {
        "attention (+rollout)": lambda: ex.attention(image, -1, None, rollout=True),
        "masks (two samplers)": lambda: (ex.masks(image, "semantic", 0.75, 0), ex.masks(image, "random", 0.75, 0)),
        "reconstruction (+3 prompts)": lambda: ex.reconstruction(image, "semantic", 0.75, 0, PROMPTS),
    }
    return {"load_s": load.seconds, "image_size": size,
            "interactions": {name: timed(fn, repeats) for name, fn in cases.items()}}


def main(argv=None) -> int:
    p = OneLineParser(prog="app_latency", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--size", type=positive_int, default=256, help="side of the input scene in pixels")
    p.add_argument("--record", type=output_file, default="outputs/bench/app_latency.json",
                   help="where the JSON record goes (checked before the measurement)")
    args = p.parse_args(argv)
    from milan_lab.tools.records import measure_and_record
    measure_and_record(args.record, "app-latency", lambda: measure(args.size, args.repeats), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
