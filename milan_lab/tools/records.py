"""Records of measurements: every measuring command can write one (``--record FILE``), and the
tables in docs/ are generated from them (``python scripts/results_tables.py``; a test fails when a
table and its records disagree).

A record holds where the numbers come from (command line, commit, machine, a matmul peak measured
in the same run, torch, threads, date), the seeds, the wall-clock, and the numbers themselves.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch

from milan_lab.data.scenes import ATTRIBUTES
from milan_lab.errors import DataError
from milan_lab.io.targets import check_writable
from milan_lab.io.weights import atomic_write


def provenance(command: str | None = None) -> dict:
    """Where a measurement comes from: the command line, the code's commit, the machine (CPU model,
    cores, GPU), torch and its threads, and the date. Every benchmark record starts with it."""
    import platform
    import subprocess
    import sys
    from datetime import datetime, timezone
    from pathlib import Path
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, timeout=10, cwd=Path(__file__).resolve().parent).stdout.strip())
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
            "cpu": cpu, "cores": os.cpu_count(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
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


class Timer:
    """Wall-clock of a block: ``with Timer() as t: ...; t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# --- tables in the docs, generated from the records ------------------------------------------------
# A table in a document sits between "<!-- table: NAME -->" and "<!-- /table -->"; NAME is a function
# below, reading records from the folder it is given (the checkout's docs/results/, which
# scripts/results_tables.py names: the package never looks for a repository's docs itself).
# `python scripts/results_tables.py` rewrites every table; tests/tools/test_records.py fails when a
# document and its records disagree.
_BLOCK = re.compile(r"(<!-- table: ([\w-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


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


def _table(rows: list[str], rec: dict, note: str = "") -> str:
    """A table and the line under it: what it shows, the command that measured it, the machine, the commit."""
    return "\n".join(rows) + f"\n\n{note}`{rec['command']}`; {_machine(rec)}; commit {rec['commit']}."


def _machine(rec: dict) -> str:
    return f"{rec['cpu']} ({rec['cores']} cores, fp32 matmul peak {rec['matmul_peak_gflops']:.0f} GFLOP/s), torch {rec['torch']}"


def table_probes(folder: Path) -> str:
    """kNN and dense probe of the shipped encoder and a random one."""
    rows = [f"| probe | {SHIPPED} | random init, same architecture | commands |",
            "| --- | --- | --- | --- |"]
    knn = [read_record(n, folder) for n in ("knn_shipped", "knn_random")]
    rows.append(f"| kNN top-1 (k = 20, cosine, T = 0.07; 2,048 train / 1,024 val scenes, 8 shapes) | "
                f"{100 * knn[0]['result']['knn_top1']:.1f} % | {100 * knn[1]['result']['knn_top1']:.1f} % | "
                f"`{knn[0]['command']}`, `{knn[1]['command']}` |")
    seg = [read_record(n, folder) for n in ("seg_shipped", "seg_random")]
    rows.append(f"| dense probe mIoU (1,024 train / 512 val scenes, 300 steps) | {100 * seg[0]['result']['miou']:.1f} % | "
                f"{100 * seg[1]['result']['miou']:.1f} % | `{seg[0]['command']}`, `{seg[1]['command']}` |")
    rows.append(f"| dense probe pixel accuracy | {100 * seg[0]['result']['pixel_acc']:.1f} % | "
                f"{100 * seg[1]['result']['pixel_acc']:.1f} % | same |")
    return "\n".join(rows) + f"\n\nMachine: {_machine(knn[0])}; commit {knn[0]['commit']}."


SHIPPED = "shipped `milan_vit-tiny-p8_randcrop-6e_offline`"
DEFAULT_RUN = "the offline default's recipe, seed 0 (`benchmarks/time_to_quality.py`'s run)"


def table_attention(folder: Path, name: str = "attention_shipped", label: str = SHIPPED) -> str:
    """The attention metric of an encoder (the shipped model's by default), its teacher and random encoders."""
    rec = read_record(name, folder)
    r = rec["result"]

    def cell(m, key):
        if key not in m:
            return "-"
        v = m[key]
        return f"{v['mean']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]"
    rows = ["| encoder | object ratio (head mean) | agreement with the teacher (head mean) |", "| --- | --- | --- |",
            f"| {label} | {cell(r['encoder'], 'object_ratio')} | "
            f"{cell(r['encoder'], 'agreement')} |",
            f"| its teacher (`milan-clip-tiny`) | {cell(r['teacher'], 'object_ratio')} | (1) |"]
    seeds = r.get("random_init_seeds", range(len(r["random"])))  # records older than the key drew seeds 0..k-1
    rows += [f"| random init, seed {k} | {cell(m, 'object_ratio')} | {cell(m, 'agreement')} |" for k, m in zip(seeds, r["random"])]
    return _table(rows, rec, f"{r['scenes']} {r.get('variant', 'dense')} validation scenes at {r['image_size']} px; "
                             f"mean [bootstrap 95 % interval over scenes]. ")


def table_teacher(folder: Path) -> str:
    rec = read_record("teacher_eval", folder)
    r = rec["result"]
    chance = {k: 1 / len(v) for k, v in ATTRIBUTES.items()} | {"shape_bare_prompt": 1 / len(ATTRIBUTES["shape"])}
    return _table(["| zero-shot on held-out scenes | accuracy | chance |", "| --- | --- | --- |"]
                  + [f"| {k.replace('_', ' ')} | {100 * v:.1f} % | {100 * chance[k]:.1f} % |" for k, v in r["zero_shot"].items()],
                  rec, f"Class-token attention on objects: {r['attention_on_objects']:.2f}x their area share (median "
                       f"{r['attention_on_objects_median']:.2f}x) over {r['n_images']} held-out scenes. ")


def table_info(folder: Path) -> str:
    """Parameter counts and FLOPs of the paper's ViT-B/16 (the paper: 86.57 M, 17.58 GFLOPs, 111.78 M)."""
    rec = read_record("info_vit_b", folder)
    r = rec["result"]
    rows = ["| ViT-B/16 | figure |", "| --- | --- |",
            f"| MILAN pretraining model, without the teacher | {r['params_total_without_teacher'] / 1e6:.2f} M parameters "
            f"(encoder {r['params_encoder'] / 1e6:.2f} M + decoder {r['params_decoder'] / 1e6:.2f} M) |",
            f"| CLIP ViT-B/16 teacher | {r['params_teacher'] / 1e6:.2f} M parameters |",
            f"| classifier (1,000 classes) | {r['params_classifier'] / 1e6:.2f} M parameters, {r['gmacs_classifier']:.2f} GMACs "
            f"per 224 px image |",
            f"| decoder forward per image | prompting {r['gflops_decoder_by_type']['prompting']:.2f} GFLOPs, MAE's "
            f"{r['gflops_decoder_by_type']['mae']:.2f} GFLOPs |"]
    return _table(rows, rec)


def table_bench(folder: Path) -> str:
    """The pretraining step of the offline default, split by stage, and its MFU."""
    rec = read_record("bench_tiny", folder)
    r = rec["result"]
    total = sum(r["stage_ms"].values())
    rows = ["| preset | batch | img/s | " + " | ".join(r["stage_ms"]) + " | MFU (vs the matmul peak of the same run) |",
            "| --- | --- | --- | " + " | ".join("---" for _ in r["stage_ms"]) + " | --- |",
            f"| `{r['preset']}` | {r['batch_size']} | {r['img_per_s']:.0f} | "
            + " | ".join(f"{100 * v / total:.0f} %" for v in r["stage_ms"].values())
            + f" | {100 * r['mfu']:.0f} % ({1e3 * r['achieved_tflops']:.0f} of {1e3 * r['peak_matmul_tflops']:.0f} GFLOP/s) |"]
    return _table(rows, rec, f"Median of {r['steps']} timed steps, {r['precision']} on {r['device']}, {r['threads']} threads. ")


def table_data_pipeline(folder: Path) -> str:
    return data_pipeline_table(read_record("data_pipeline", folder))


def data_pipeline_table(record: dict) -> str:
    """The table of a ``benchmarks/data_pipeline.py`` record (the script prints the same)."""
    lines = ["| pipeline | img/s per core | vs timm | 1 worker | 2 workers | bytes per image to the device |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in record["results"].items():
        lines.append(f"| {name} | {r['per_core_img_s']:.0f} | {r['per_core_vs_timm']:.2f}x | {r['workers_1_img_s']:.0f} | "
                     f"{r['workers_2_img_s']:.0f} | {r['bytes_to_device_per_image']:,} ({r['dtype']}) |")
    return "\n".join(lines)


def table_ablation(folder: Path, name: str = "ablation_dense") -> str:
    """The ablation studio's tables (``tools.ablation.markdown_tables``) from its notebook's record, the
    statistics computed now from the record's per-seed rows (not the summary it stored when it ran)."""
    from milan_lab.tools.ablation import markdown_tables, summarise  # sibling tools: imported where they are used
    from milan_lab.tools.plans import plan_footer
    rec = read_record(name, folder)
    res = rec["result"]
    note = (f"{len(rec['seeds'])} paired seeds, {res['params']['variant']} scenes, {res['params']['preset']}; mean ± std "
            f"over seeds; * : Holm-adjusted p < 0.05; {rec['wall_s'] / 60:.0f} min in the sitting that wrote the record (runs "
            f"finished in earlier sittings are reused). ") + plan_footer(res)
    plan = res.get("plan") or {}  # a planned study's family and margin; before plans: every probe, no margin
    summary = summarise(res["rows"], family=plan.get("holm_family"), margin=plan.get("tost_margin"))
    return _table([markdown_tables(summary, primary=res["params"]["primary"])], rec, note)


def table_app_latency(folder: Path) -> str:
    rec = read_record("app_latency", folder)
    return _table([app_latency_table(rec["result"])], rec)


def app_latency_table(result: dict) -> str:
    """The table of a ``benchmarks/app_latency.py`` result (the script prints the same)."""
    rows = ["| explorer interaction (the app's tabs) | median | worst |", "| --- | --- | --- |",
            f"| load the teacher and the shipped model (once per app start) | {result['load_s']:.2f} s | - |"]
    rows += [f"| {name}, {result['image_size']} px scene | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms |"
             for name, r in result["interactions"].items()]
    return "\n".join(rows)


def table_views_grid(folder: Path) -> str:
    """``benchmarks/views_grid.py``: where the class token looks and what the features hold, per view and loss."""
    from milan_lab.tools.ablation import markdown_tables, summarise  # sibling tools: imported where they are used
    from milan_lab.tools.plans import plan_footer
    rec = read_record("views_grid", folder)
    res = rec["result"]
    note = (f"{len(rec['seeds'])} paired seeds, {res['steps']} steps each, {res['preset']}, {rec['wall_s'] / 60:.0f} min; "
            f"mean ± std over seeds; differences to `{res['baseline']}`; Holm over arms x the primary metrics "
            f"(* : adjusted p < 0.05; the other metrics show their raw p only); offline default by the declared "
            f"rule: **{res['choice']}**. ") + plan_footer(res)
    summary = summarise(res["rows"], res["metrics"], baseline=res["baseline"], family=res["primary"],  # from the per-seed rows
                        diff_key="baseline_minus_arm", extra=(), margin=(res.get("plan") or {}).get("tost_margin"))
    table = markdown_tables(summary, res["metrics"], primary=res["primary"], baseline=res["baseline"],
                            diff_key="baseline_minus_arm")
    return _table([table], rec, note)


def table_time_to_quality(folder: Path) -> str:
    """``benchmarks/time_to_quality.py``: per recipe and seed, the training time, steps, images and FLOPs to
    the target kNN, then each recipe's time over the reference's, paired by seed."""
    rec = read_record("time_to_quality", folder)
    res = rec["result"]
    rows = ["| recipe | seed | train s to target | steps | images | training TFLOP | final kNN | total steps |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["runs"]:
        h = r["at_target"]
        cells = (f"{h['train_s']:.0f} | {h['steps']:.0f} | {h['images']:,.0f} | {h['tflops']:.1f}" if h
                 else "not reached | - | - | -")
        rows.append(f"| {r['recipe']} | {r['seed']} | {cells} | {100 * r['final']['knn']:.1f} % | {r['final']['steps']} |")
    rows += ["", "| time to the target / the reference's, paired by seed | mean | range | seeds |", "| --- | --- | --- | --- |"]
    rows += [f"| {name} | {sum(v) / len(v):.2f} | {min(v):.2f}-{max(v):.2f} | {len(v)} |" for name, v in res["ratios"].items()]
    return _table(rows, rec, f"Target kNN top-1 {100 * res['target']:.0f} %, kNN (k = 20) every {res['eval_every']} steps on "
                             f"{res['val_size']:,} validation scenes, interpolated linearly between evaluations; training "
                             f"seconds leave the evaluations out. ")


def table_hidden_object(folder: Path) -> str:
    """``benchmarks/hidden_object.py``: how often each mask sampler hides the main object, before training."""
    rec = read_record("hidden_object", folder)
    r = rec["result"]
    return _table([hidden_object_table(r)], rec, f"{r['scenes']:,} validation scenes per kind at {r['image_size']} px "
                                                 f"({r['patch_size']}-px patches), the shipped teacher's importance; "
                                                 f"[95 % interval]. ")


def hidden_object_table(result: dict) -> str:
    """The table of a ``benchmarks/hidden_object.py`` result (the script prints the same): per scene kind and
    mask ratio, for random and semantic masking, the share of scenes with no visible patch touching the main
    object, with none at least half covered by it, and the mean share of its pixels left visible."""
    def pct(v):
        return f"{100 * v['mean']:.1f} [{100 * v['ci95'][0]:.1f}, {100 * v['ci95'][1]:.1f}]"
    rows = ["| scenes | mask ratio | kept patches | no visible object patch, % (random / semantic) | "
            "no visible patch half covered, % (random / semantic) | object pixels visible, % (random / semantic) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for variant, v in result["variants"].items():
        for ratio, by in v["by_ratio"].items():
            rnd, sem = by["random"], by["semantic"]
            rows.append(f"| {variant} (object {100 * v['object_area_share']:.0f} % of the image, {v['object_patches']:.1f} "
                        f"patches) | {float(ratio):g} | {rnd['kept_patches']} | "
                        + " | ".join(f"{pct(rnd[k])} / {pct(sem[k])}" for k in ("none_visible", "none_half_visible",
                                                                                 "visible_share")) + " |")
    return "\n".join(rows)


def table_text_maps(folder: Path) -> str:
    """``benchmarks/text_maps.py``: how well each text-prompt map localises the object its prompt names."""
    rec = read_record("text_maps", folder)
    r = rec["result"]
    return _table([text_maps_table(r)], rec, f"{r['scenes']:,} validation scenes per kind and seed (seeds "
                                             f"{', '.join(map(str, r['seeds']))}) at {r['image_size']} px, the shipped "
                                             f"teacher and `{r['model']}` ({r['sampler']} mask at {r['mask_ratio']:g}); mean "
                                             f"AUROC over scenes [95 % t-interval] (share of scenes above 0.5). ")


def text_maps_table(result: dict) -> str:
    """The table of a ``benchmarks/text_maps.py`` result (the script prints the same): per scene kind and
    prompt form, each map's AUROC against the named object's pixels over all seeds' scenes (0.5: blind to the
    object; below: darkest on it), and the range of the per-seed means."""
    maps = list(next(iter(next(iter(result["variants"].values()))["all_seeds"].values())))
    rows = ["| scenes | prompt names the object by | " + " | ".join(f"{m}: AUROC (share > 0.5)" for m in maps)
            + " | per-seed means (" + " / ".join(maps) + ") |",
            "| --- | --- | " + " | ".join("---" for _ in maps) + " | --- |"]

    def cell(v):
        return f"{v['mean']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}] ({100 * v['above_half']:.0f} %)"

    for variant, v in result["variants"].items():
        for form, by_map in v["all_seeds"].items():
            spread = " / ".join(
                f"{min(s[form][m]['mean'] for s in v['by_seed'].values()):.2f}-"
                f"{max(s[form][m]['mean'] for s in v['by_seed'].values()):.2f}" for m in maps)
            rows.append(f"| {variant} | {form} | " + " | ".join(cell(by_map[m]) for m in maps) + f" | {spread} |")
    return "\n".join(rows)


PROBE_NAMES = {"knn_cls": "kNN, class token", "knn_mean": "kNN, mean patch", "linear_cls": "linear, class token",
               "linear_mean": "linear, mean patch", "miou": "dense mIoU"}


def table_teacher_ceilings(folder: Path) -> str:
    """``benchmarks/teacher_ceilings.py``: the shipped teachers' zero-shot per scene kind and their own probe scores."""
    rec = read_record("teacher_ceilings", folder)
    r = rec["result"]
    dense = f", dense probe {r['dense_train']:,} / {r['dense_val']:,} scenes, {r['dense_steps']} steps" if r["dense_steps"] else ""
    return _table([teacher_ceilings_table(r)], rec,
                  f"Zero-shot on {r['zero_shot_images']:,} held-out scenes per kind (chance 12.5 % for shape and colour, 50 % for "
                  f"size); probes on the teachers' targets (all tokens after `ln_post` and `proj`) and on a random-init "
                  f"encoder's tokens, {r['train']:,} training / {r['val']:,} validation scenes at {r['image_size']} px{dense}; "
                  f"accuracy ± its binomial standard error. ")


def teacher_ceilings_table(result: dict) -> str:
    """The tables of a ``benchmarks/teacher_ceilings.py`` result (the script prints the same): zero-shot shape per
    teacher and scene kind (and colour and size on the first kind), then each probe per teacher and the floor."""
    teachers = result["teachers"]
    kinds = list(next(iter(teachers.values()))["zero_shot"])
    rows = ["| teacher (what its captions named) | " + " | ".join(f"zero-shot shape, {k} %" for k in kinds)
            + f" | zero-shot colour, {kinds[0]} % | zero-shot size, {kinds[0]} % |",
            "| --- | " + " | ".join("---" for _ in kinds) + " | --- | --- |"]
    for name, t in teachers.items():
        zs = t["zero_shot"]
        rows.append(f"| `{name}` ({t['knows']}) | " + " | ".join(f"{100 * zs[k]['shape']:.1f}" for k in kinds)
                    + f" | {100 * zs[kinds[0]]['colour']:.1f} | {100 * zs[kinds[0]]['size']:.1f} |")
    encoders = {f"`{n}`": t["probes"] for n, t in teachers.items()}
    encoders |= {f"{n} (`{result['preset']}`, the floor)": f["probes"] for n, f in result["floor"].items()}
    first = next(iter(next(iter(encoders.values())).values()))
    probes = [p for p in result["probes"] if p in first]
    rows += ["", "| encoder | scenes | " + " | ".join(f"{PROBE_NAMES[p]} %" for p in probes) + " |",
             "| --- | --- | " + " | ".join("---" for _ in probes) + " |"]
    for label, by_kind in encoders.items():
        for kind, scores in by_kind.items():
            rows.append(f"| {label} | {kind} | " + " | ".join(
                f"{100 * scores[p]['mean']:.1f}" + (f" ± {100 * scores[p]['se']:.1f}" if "se" in scores[p] else "")
                for p in probes) + " |")
    return "\n".join(rows)


def table_probe_noise(folder: Path) -> str:
    """``benchmarks/probe_noise.py``: the kNN probe's own spread at each validation size, beside a study's seed spread."""
    rec = read_record("probe_noise", folder)
    r = rec["result"]
    return _table([probe_noise_table(r)], rec,
                  f"`{r['checkpoint']}` and a random-init `{r['preset']}` encoder; kNN (k = 20) with {r['memories']} disjoint "
                  f"memory banks of {r['train_images']:,} training scenes, validation sets cut disjointly from "
                  f"{r['val_pool']:,} validation scenes; a draw is one (bank, validation set) pair, so at every size a "
                  f"draw changes both the bank and the validation scenes (draws = sets × banks); bootstrap: "
                  f"{r['bootstrap']:,} resamples of the validation scenes on bank 0. Seed spread: "
                  f"`{r['seed_spread']['record']}` (commit {r['seed_spread']['commit']}), "
                  f"{len(r['seed_spread']['seeds'])} seeds. ")


def probe_noise_table(result: dict) -> str:
    """The tables of a ``benchmarks/probe_noise.py`` result (the script prints the same): per validation size and
    pooling, each encoder's kNN and the paired difference with their spread over draws, the bootstrap SD and the
    binomial SE; then the study's spread between seeds, per probe, in points."""
    def sd(v):
        return "-" if v is None else f"{v:.2f}"
    rows = ["| validation scenes | pooling | draws (sets × banks) | student kNN % (SD over draws; binomial SE) | "
            "random init kNN % (SD; binomial SE) | paired difference, points | its SD over draws | its bootstrap SD |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n, by_pool in result["sizes"].items():
        for pool, m in by_pool.items():
            s, f = (m["encoders"][e] for e in ("student", "random init"))
            d = m["difference"]
            rows.append(f"| {int(n):,} | {pool} | {d['draws']} ({m['validation_sets']} × {m['banks']}) | "
                    f"{s['mean']:.1f} ({sd(s['sd'])}; {s['binomial_se']:.2f}) | "
                        f"{f['mean']:.1f} ({sd(f['sd'])}; {f['binomial_se']:.2f}) | {d['mean']:+.1f} | {sd(d['sd'])} | "
                        f"{d['bootstrap_sd']:.2f} |")
    spread = result["seed_spread"]
    rows += ["", f"| spread between seeds ({spread['val_images']} validation scenes) | SD of an arm, median (range) | SD of a "
                 f"paired difference to {spread['baseline']}, median (range) |", "| --- | --- | --- |"]
    for probe, v in spread["probes"].items():
        arm, diff = list(v["arm_sd"].values()), list(v["diff_sd"].values())
        rows.append(f"| {PROBE_NAMES[probe]} | {v['median_arm_sd']:.2f} ({min(arm):.2f}-{max(arm):.2f}) | "
                    f"{v['median_diff_sd']:.2f} ({min(diff):.2f}-{max(diff):.2f}) |")
    return "\n".join(rows)


TABLES = {"probes": table_probes, "bench": table_bench, "attention": table_attention,
          "attention-sparse": lambda folder: table_attention(folder, "attention_shipped_sparse"),
          "attention-default": lambda folder: table_attention(folder, "attention_default", DEFAULT_RUN),
          "teacher": table_teacher, "info": table_info,
          "ablation-dense": lambda folder: table_ablation(folder, "ablation_dense"),
          "ablation-sparse": lambda folder: table_ablation(folder, "ablation_sparse"),
          "data-pipeline": table_data_pipeline, "views-grid": table_views_grid,
          "time-to-quality": table_time_to_quality, "app-latency": table_app_latency,
          "hidden-object": table_hidden_object, "teacher-ceilings": table_teacher_ceilings,
          "probe-noise": table_probe_noise, "text-maps": table_text_maps}


def render_tables(text: str, folder: str | Path) -> str:
    """``text`` with every table block regenerated from the records in ``folder``."""
    def fill(m):
        if m.group(2) not in TABLES:
            raise KeyError(f"unknown table {m.group(2)!r}; known: {', '.join(TABLES)}")
        return m.group(1) + TABLES[m.group(2)](folder) + "\n" + m.group(4)
    return _BLOCK.sub(fill, text)
