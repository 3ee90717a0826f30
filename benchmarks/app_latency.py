"""Latency of each explorer interaction with the default (shipped) models; prints figures.

    python benchmarks/app_latency.py
"""
import statistics
import time

from milan_lab.data.scenes import make_scene
from milan_lab.viz.panels import Explorer


def timed(fn, repeats=5):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


if __name__ == "__main__":
    t0 = time.perf_counter()
    ex = Explorer.from_defaults()
    print(f"load teacher + model: {time.perf_counter() - t0:.2f} s")
    image = make_scene(0, "test", 0, 256)[0]
    cases = {
        "attention (+rollout)": lambda: ex.attention(image, -1, None, rollout=True),
        "masks (two samplers)": lambda: (ex.masks(image, "semantic", 0.75, 0), ex.masks(image, "random", 0.75, 0)),
        "reconstruction (+3 prompts)": lambda: ex.reconstruction(image, "semantic", 0.75, 0, ["a star", "a ring", "a red shape"]),
    }
    for name, fn in cases.items():
        med, worst = timed(fn)
        print(f"{name:<28} median {1e3 * med:7.1f} ms   max {1e3 * worst:7.1f} ms")
