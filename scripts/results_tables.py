"""Regenerate every table in docs/*.md from the records in docs/results/ (run after re-measuring).

    python scripts/results_tables.py [--check]

With --check, change nothing and exit 1 when a document differs from its records.
"""
import sys
from pathlib import Path

from milan_lab.tools.records import render_tables

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> int:
    stale = []
    for doc in sorted(DOCS.glob("*.md")):
        text = doc.read_text()
        new = render_tables(text)
        if new != text:
            stale.append(doc.name)
            if "--check" not in sys.argv:
                doc.write_text(new)
    print(("differ from their records: " if "--check" in sys.argv else "rewritten: ") + (", ".join(stale) or "none"))
    return 1 if stale and "--check" in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())
