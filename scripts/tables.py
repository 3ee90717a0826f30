"""The tables of the repository's documents, generated from the records in docs/results/.

A table in a document sits between ``<!-- table: NAME -->`` and ``<!-- /table -->``; NAME is a key of
:data:`TABLES`, whose function reads its records from the folder it is given and returns the table's
markdown with the line under it (what it shows, the command that measured it, the machine, the commit).
``python scripts/results_tables.py`` rewrites every table; tests/scripts/test_results_tables.py fails when
a document and its records disagree.

To add a table: measure with ``--record docs/results/NAME.json``, write ``table_NAME(folder)`` here (read
the record with ``read_record(NAME, folder)``, build the rows, return ``_table(rows, rec, note)``), name it
in :data:`TABLES`, put the two markers in a document and run ``python scripts/results_tables.py``. A
benchmark that prints its own result's table keeps that function (``table(result)``) in its script, and
the document shows the same table: ``benchmark_table(NAME, folder, note)`` (``benchmarks/NAME.py``,
``docs/results/NAME.json``).

These renderers hold the documents' prose, so they live beside the documents, not in the installed
package (which keeps the records' provenance: ``milan_lab.tools.records``).
"""
from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from milan_lab.data.scenes import ATTRIBUTES
from milan_lab.tools.records import read_record

CHECKOUT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"(<!-- table: ([\w-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


@functools.cache
def benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` of this checkout as a module, loaded by its path (benchmarks/ is a folder of
    scripts, not a package); its ``table(result)`` is the table the script prints."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", CHECKOUT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # before it runs, as an import would (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def _table(rows: list[str], rec: dict, note: str = "") -> str:
    """A table and the line under it: what it shows, the command that measured it, the machine, the commit (and
    whether the tree had uncommitted changes: then the commit alone does not reproduce the numbers)."""
    dirty = " with uncommitted changes" if rec.get("uncommitted_changes") else ""
    return "\n".join(rows) + f"\n\n{note}`{rec['command']}`; {_machine(rec)}; commit {rec['commit']}{dirty}."


def benchmark_table(name: str, folder: Path, note=lambda result: "") -> str:
    """The table ``benchmarks/NAME.py`` prints (its ``table(result)``), from the record ``folder/NAME.json``,
    with the line under it: ``note(result)``, then the command, the machine and the commit."""
    rec = read_record(name, folder)
    return _table([benchmark(name).table(rec["result"])], rec, note(rec["result"]))


def _machine(rec: dict) -> str:
    """The CPU, its cores, the instruction set torch ran with (records from before it was kept do not say), the
    matmul peak of the same run, torch."""
    isa = f", {rec['cpu_capability']}" if rec.get("cpu_capability") else ""
    return f"{rec['cpu']} ({rec['cores']} cores{isa}, fp32 matmul peak {rec['matmul_peak_gflops']:.0f} GFLOP/s), torch {rec['torch']}"


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


SHIPPED = "shipped `milan_vit-tiny-p8_offline`"


def table_attention(folder: Path, name: str = "attention_shipped", label: str = SHIPPED) -> str:
    """Where an encoder's class token looks (the shipped model's by default), beside its teacher, random
    encoders and, in records that have it, the pixel-saliency floor; "-" where a record predates a metric."""
    rec = read_record(name, folder)
    r = rec["result"]
    metrics = ("object_ratio", "object_mass", "object_auroc", "agreement")

    def cells(m, teacher=False):
        def one(key):
            if teacher and key == "agreement":
                return "(1)"
            if key not in m:
                return "-"
            v = m[key]
            return f"{v['mean']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]"
        return " | ".join(one(k) for k in metrics)
    rows = ["| encoder | object ratio | attention mass on the object | AUROC against the object | agreement with the teacher |",
            "| --- | --- | --- | --- | --- |", f"| {label} | {cells(r['encoder'])} |",
            f"| its teacher (`milan-clip-tiny`) | {cells(r['teacher'], teacher=True)} |"]
    seeds = r.get("random_init_seeds", range(len(r["random"])))  # records older than the key drew seeds 0..k-1
    rows += [f"| random init, seed {k} | {cells(m)} |" for k, m in zip(seeds, r["random"])]
    if "saliency" in r:
        rows.append(f"| pixel saliency (colour distinctness, no training) | {cells(r['saliency'])} |")
    return _table(rows, rec, f"{r['scenes']} {r.get('variant', 'dense')} validation scenes at {r['image_size']} px; "
                             f"class-token attention of the last block, head mean; mean [bootstrap 95 % interval over scenes]. ")


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
    return benchmark("data_pipeline").table(read_record("data_pipeline", folder))


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


def table_study(folder: Path, name: str) -> str:
    """A planned study's tables (``benchmarks/study.py``'s ``table``) from its record ``folder/NAME.json``, with the
    shipped teachers' ceilings from ``folder/teacher_ceilings.json``; a document names it in :data:`TABLES` as
    ``"study-NAME": lambda folder: table_study(folder, "NAME")`` once the record exists."""
    rec = read_record(name, folder)
    res = rec["result"]
    p = res["params"]
    ceilings = benchmark("study").ceilings(p["variant"], Path(folder) / "teacher_ceilings.json")
    note = (f"{len(rec['seeds'])} paired seeds, {p['variant']} scenes, {p['preset']}, runs on {res['device']}; mean ± std over "
            f"seeds; * : Holm-adjusted p < 0.05 over the plan's family; = : equivalent within the plan's TOST margin; "
            f"{rec['wall_s'] / 60:.0f} min in the sitting that wrote the record (finished runs are reused)")
    earlier = res.get("earlier_sittings") or []  # a study resumed from its record (--resume) keeps what they took
    if earlier:
        peaks = [e["matmul_peak_gflops"] for e in earlier if e.get("matmul_peak_gflops")]
        kind = "matmul peak (bf16 on a GPU, fp32 on a CPU)" if any(e.get("gpu") for e in earlier) else "fp32 matmul peak"
        spread = ""
        if peaks:
            span = f"{min(peaks):.0f}" if round(min(peaks)) == round(max(peaks)) else f"{min(peaks):.0f}-{max(peaks):.0f}"
            spread = f" ({kind} {span} GFLOP/s)"
        note += (f", {sum(e.get('wall_s') or 0 for e in earlier) / 60:.0f} min in {len(earlier)} earlier sitting"
                 f"{'s' if len(earlier) > 1 else ''}{spread}")
    return _table([benchmark("study").table(res, ceilings)], rec, note + ". ")


def table_app_latency(folder: Path) -> str:
    return benchmark_table("app_latency", folder)


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
    return benchmark_table("hidden_object", folder, lambda r: f"{r['scenes']:,} validation scenes per kind at {r['image_size']} "
                                                              f"px ({r['patch_size']}-px patches), the shipped teacher's "
                                                              f"importance; [95 % interval]. ")


def table_text_maps(folder: Path) -> str:
    """``benchmarks/text_maps.py``: how well each text-prompt map localises the object its prompt names."""
    return benchmark_table("text_maps", folder, lambda r: (
        f"{r['scenes']:,} validation scenes per kind and seed (seeds {', '.join(map(str, r['seeds']))}) at {r['image_size']} "
        f"px, the shipped teacher and `{r['model']}` ({r['sampler']} mask at {r['mask_ratio']:g}); mean AUROC over scenes "
        f"[95 % t-interval] (share of scenes above 0.5). "))


def table_teacher_ceilings(folder: Path) -> str:
    """``benchmarks/teacher_ceilings.py``: the shipped teachers' zero-shot per scene kind and their own probe scores."""
    def note(r):
        dense = f", dense probe {r['dense_train']:,} / {r['dense_val']:,} scenes, {r['dense_steps']} steps" if r["dense_steps"] else ""
        return (f"Zero-shot on {r['zero_shot_images']:,} held-out scenes per kind (chance 12.5 % for shape and colour, 50 % for "
                f"size); probes on the teachers' targets (all tokens after `ln_post` and `proj`) and on a random-init "
                f"encoder's tokens, {r['train']:,} training / {r['val']:,} validation scenes at {r['image_size']} px{dense}; "
                f"accuracy ± its binomial standard error. ")
    return benchmark_table("teacher_ceilings", folder, note)


def table_probe_noise(folder: Path) -> str:
    """``benchmarks/probe_noise.py``: the kNN probe's own spread at each validation size, beside a study's seed spread."""
    return benchmark_table("probe_noise", folder, lambda r: (
        f"`{r['checkpoint']}` and a random-init `{r['preset']}` encoder; kNN (k = 20) with {r['memories']} disjoint "
        f"memory banks of {r['train_images']:,} training scenes, validation sets cut disjointly from "
        f"{r['val_pool']:,} validation scenes; a draw is one (bank, validation set) pair, so at every size a "
        f"draw changes both the bank and the validation scenes (draws = sets × banks); bootstrap: "
        f"{r['bootstrap']:,} resamples of the validation scenes on bank 0. Seed spread: "
        f"`{r['seed_spread']['record']}` (commit {r['seed_spread']['commit']}), "
        f"{len(r['seed_spread']['seeds'])} seeds. "))


def table_score_repeat(folder: Path) -> str:
    """``benchmarks/score_repeat.py``: one study arm re-scored under instruction-set limits, beside the records."""
    return benchmark_table("score_repeat", folder, lambda r: (
        f"The `{r['arm']}` arm of plan `{r['plan']}`, seed {r['seed']}, on {r['variant']} scenes, scored as the study "
        f"scores it, in one fresh process per instruction-set limit on this CPU (`ATEN_CPU_CAPABILITY`, "
        f"`MKL_ENABLE_INSTRUCTIONS`, `ONEDNN_MAX_CPU_ISA`; torch's reported capability in the header), beside the "
        f"scores the study records hold for the same arm and seed. "))


TABLES = {"probes": table_probes, "bench": table_bench, "attention": table_attention,
          "attention-sparse": lambda folder: table_attention(folder, "attention_shipped_sparse"),
          "attention-mid": lambda folder: table_attention(folder, "attention_shipped_mid"),
          "teacher": table_teacher, "info": table_info,
          "ablation-dense": lambda folder: table_ablation(folder, "ablation_dense"),
          "ablation-sparse": lambda folder: table_ablation(folder, "ablation_sparse"),
          "data-pipeline": table_data_pipeline, "views-grid": table_views_grid,
          "time-to-quality": table_time_to_quality, "app-latency": table_app_latency,
          "hidden-object": table_hidden_object, "teacher-ceilings": table_teacher_ceilings,
          "probe-noise": table_probe_noise, "score-repeat": table_score_repeat, "text-maps": table_text_maps,
          "study-masking_mid": lambda folder: table_study(folder, "masking_mid"),
          "study-masking_dense": lambda folder: table_study(folder, "masking_dense"),
          "study-masking_dense_075": lambda folder: table_study(folder, "masking_dense_075"),
          "study-targets": lambda folder: table_study(folder, "targets"),
          "study-decoder": lambda folder: table_study(folder, "decoder")}


def render_tables(text: str, folder: str | Path) -> str:
    """``text`` with every table block regenerated from the records in ``folder``."""
    def fill(m):
        if m.group(2) not in TABLES:
            raise KeyError(f"unknown table {m.group(2)!r}; known: {', '.join(TABLES)}")
        return m.group(1) + TABLES[m.group(2)](folder) + "\n" + m.group(4)
    return _BLOCK.sub(fill, text)
