"""Images/s of the pretraining input pipeline on JPEG folders: timm's chain, a PIL chain and
DecodeCrop, in one run on one machine (only same-run ratios mean anything).

    python benchmarks/data_pipeline.py [--images 256] [--size 224] [--out outputs/bench/data_pipeline]

The corpus is a class folder of JPEGs with ImageNet's sizes (short side 300-500 px, quality 90),
made from the photos scikit-image and matplotlib ship (milan_lab.data.jpeg_corpus). Each
pipeline produces MILAN's pretraining view (RandomResizedCrop scale (0.2, 1), bicubic, flip):
  timm         timm's create_transform (same ops: no colour jitter) on PIL.Image.open; float out
  pil          the PIL chain (milan_lab's path for in-memory images): load_image, torchvision transforms under a
               per-sample fork_rng; float out
  decode-crop  DecodeCrop: one open, reduced-size JPEG decode where the crop allows it, crop and resize in
               one call, uint8 out (normalised on the device), numpy generator per sample
  preset-view  the view the default preset (teacher_cache=true) reads a folder through: its fixed full view
               (DecodeView: the same decoder, the short side resized, centre crop, uint8 out), built by
               milan_lab.jobs.pretrain.train_view from the default config with data=the corpus
Per core: the main process alone, one thread. Then DataLoader with 1 and 2 workers. Also the bytes per
image moved to the device. Writes a JSON record (command, commit, CPU, torch, seeds, figures) to --out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# Only light modules here: a refused option answers at once; torch, timm and PIL load when the work starts.
from milan_lab.cli import OneLineParser, output_folder, positive_int
from milan_lab.errors import MilanLabError
from milan_lab.io.targets import check_writable


def pipelines(root: Path, size: int) -> dict:
    from PIL import Image
    from timm.data import create_transform

    from milan_lab.data.datasets import ClassFolder
    from milan_lab.config import get_config
    from milan_lab.data.transforms import DecodeCrop, pretrain_transform
    from milan_lab.jobs.pretrain import train_view

    class TimmFolder(ClassFolder):
        """The class folder read as timm's own loaders do: PIL open, convert, transform."""

        def __getitem__(self, index):
            path, label = self.samples[index]
            with open(path, "rb") as f:
                img = Image.open(f).convert("RGB")
            return self.seeded.transform(img), label

    timm_tf = create_transform(size, is_training=True, scale=(0.2, 1.0), interpolation="bicubic", color_jitter=None)
    return {"timm": TimmFolder(str(root), timm_tf),
            "pil": ClassFolder(str(root), pretrain_transform(size, 0.2)),
            "decode-crop": ClassFolder(str(root), DecodeCrop(size, scale=(0.2, 1.0))),
            # what `milan-lab pretrain data=FOLDER` builds on the default preset (the teacher cache's fixed views)
            "preset-view": ClassFolder(str(root), train_view(get_config("pretrain", None, [f"data={root}",
                                                                                         f"image_size={size}"])))}


def per_core(dataset, n: int) -> float:
    """Images/s of ``__getitem__`` in this process on one thread."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset[0]  # warm-up
        t = time.perf_counter()
        for i in range(n):
            dataset[i % len(dataset)]
        return n / (time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)


def with_workers(dataset, n: int, workers: int, batch: int = 32) -> float:
    import torch
    from torch.utils.data import DataLoader
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, shuffle=False, persistent_workers=False,
                        worker_init_fn=lambda _: torch.set_num_threads(1))
    t, seen = time.perf_counter(), 0
    for images, _ in loader:
        seen += len(images)
        if seen >= n:
            break
    return seen / (time.perf_counter() - t)


def table(record: dict) -> str:
    """The table of a record: the script prints it, and the document's table (scripts/tables.py) is the same."""
    lines = ["| pipeline | img/s per core | vs timm | 1 worker | 2 workers | bytes per image to the device |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in record["results"].items():
        lines.append(f"| {name} | {r['per_core_img_s']:.0f} | {r['per_core_vs_timm']:.2f}x | {r['workers_1_img_s']:.0f} | "
                     f"{r['workers_2_img_s']:.0f} | {r['bytes_to_device_per_image']:,} ({r['dtype']}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = OneLineParser(prog="data_pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=positive_int, default=256, help="images in the corpus and per measurement")
    p.add_argument("--size", type=positive_int, default=224, help="output side (the paper's 224)")
    p.add_argument("--out", type=output_folder, default="outputs/bench/data_pipeline",
                   help="folder for the JPEG corpus and record.json (checked before any work)")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        check_writable(out / "record.json", "record")
    except MilanLabError as e:
        p.error(str(e))
    import numpy as np
    from PIL import Image

    from milan_lab.data.jpeg_corpus import make_jpeg_corpus
    from milan_lab.io.weights import atomic_write
    from milan_lab.tools.records import provenance
    root = make_jpeg_corpus(out / "corpus", n=args.images, seed=0)
    sides = [min(Image.open(f).size) for f in sorted(root.rglob("*.jpg"))]
    t0 = time.perf_counter()
    results = {}
    for name, ds in pipelines(root, args.size).items():
        sample = ds[0][0]
        results[name] = {"per_core_img_s": per_core(ds, args.images),
                         "workers_1_img_s": with_workers(ds, args.images, 1),
                         "workers_2_img_s": with_workers(ds, args.images, 2),
                         "bytes_to_device_per_image": sample.numel() * sample.element_size(),
                         "dtype": str(sample.dtype).replace("torch.", "")}
    base = results["timm"]["per_core_img_s"]
    for r in results.values():
        r["per_core_vs_timm"] = r["per_core_img_s"] / base
    record = {**provenance(), "benchmark": "data_pipeline", "seeds": [0], "images": args.images, "size": args.size,
              "corpus_short_side_px": [int(np.min(sides)), int(np.median(sides)), int(np.max(sides))],
              "wall_s": time.perf_counter() - t0, "results": results}
    print(f"{record['cpu']}, torch {record['torch']}; {args.images} JPEGs, short side {record['corpus_short_side_px'][0]}-"
          f"{record['corpus_short_side_px'][2]} px (median {record['corpus_short_side_px'][1]}), output {args.size} px")
    print(f"{'pipeline':<12} {'img/s/core':>10} {'vs timm':>8} {'1 worker':>9} {'2 workers':>10} {'bytes/img':>10}")
    for name, r in results.items():
        print(f"{name:<12} {r['per_core_img_s']:>10.0f} {r['per_core_vs_timm']:>7.2f}x {r['workers_1_img_s']:>9.0f} "
              f"{r['workers_2_img_s']:>10.0f} {r['bytes_to_device_per_image']:>10,}")
    print(table(record))
    atomic_write(out / "record.json", lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    print(f"record: {out / 'record.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
