"""Regenerate every table in docs/*.md from the records in docs/results/ (run after re-measuring).

    python scripts/results_tables.py [--check] [--root CHECKOUT]

The documents and records are those of the checkout this script belongs to (or of ``--root``),
never those of wherever milan_lab happens to be installed from. With --check, change nothing and
exit 1 when a document differs from its records. A missing or damaged record is one line naming
the file (exit 2).
"""
import argparse
import importlib.util
import sys
from pathlib import Path

from milan_lab.errors import MilanLabError
from milan_lab.io.weights import atomic_write

CHECKOUT = Path(__file__).resolve().parents[1]


def _renderers():
    """scripts/tables.py beside this script, loaded by its path: scripts/ is a folder of scripts, not a
    package, and a copy of this script in another checkout renders with that checkout's own tables."""
    spec = importlib.util.spec_from_file_location(f"tables_{abs(hash(str(CHECKOUT)))}", Path(__file__).with_name("tables.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="results_tables", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a document differs from its records")
    p.add_argument("--root", type=Path, default=CHECKOUT, help="the checkout whose docs/ to read (default: this script's)")
    args = p.parse_args(argv)
    docs = args.root / "docs"
    if not docs.is_dir():
        print(f"results_tables: error: {docs}: no such folder (--root names a checkout holding docs/)", file=sys.stderr)
        return 2
    render_tables = _renderers().render_tables
    stale = []
    try:
        for doc in sorted(docs.glob("*.md")):
            text = doc.read_text()
            new = render_tables(text, docs / "results")
            if new != text:
                stale.append(doc.name)
                if not args.check:
                    atomic_write(doc, lambda tmp, new=new: tmp.write_text(new))
    except MilanLabError as e:  # a missing or damaged record: one line naming it
        print(f"results_tables: error: {e}", file=sys.stderr)
        return 2
    print(("differ from their records: " if args.check else "rewritten: ") + (", ".join(stale) or "none"))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
