"""Regenerate every table in docs/*.md from the records in docs/results/ (run after re-measuring).

    python scripts/results_tables.py [--check] [--root CHECKOUT]

The documents and records are those of the checkout this script belongs to (or of ``--root``),
never those of wherever milan_lab happens to be installed from. With --check, change nothing and
exit 1 when a document differs from its records. A missing or damaged record is one line naming
the file (exit 2).
"""
import argparse
import sys
from pathlib import Path

from milan_lab.errors import MilanLabError
from milan_lab.io.weights import atomic_write
from milan_lab.tools.records import render_tables

CHECKOUT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="results_tables", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a document differs from its records")
    p.add_argument("--root", type=Path, default=CHECKOUT, help="the checkout whose docs/ to read (default: this script's)")
    args = p.parse_args(argv)
    docs = args.root / "docs"
    if not docs.is_dir():
        print(f"results_tables: error: {docs}: no such folder (--root names a checkout holding docs/)", file=sys.stderr)
        return 2
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
