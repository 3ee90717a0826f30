"""The config package keeps every name the rest of the project imports from ``milan_lab.config``."""
from __future__ import annotations

import ast

import nbformat

import milan_lab.config as C
from tests.helpers import ROOT


def _sources():
    for folder in ("milan_lab", "tests", "benchmarks", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            yield path, path.read_text(encoding="utf-8")
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                yield path, "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))


def test_every_name_imported_from_the_config_is_there():
    imported = {}
    for path, text in _sources():
        if "milan_lab.config" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module == "milan_lab.config":
                imported.update({alias.name: path for alias in node.names})
    assert {"get_config", "PretrainConfig", "apply_overrides", "describe", "check_device"} <= set(imported)
    missing = {name: str(path) for name, path in imported.items() if not hasattr(C, name)}
    assert missing == {}
    assert set(C.__all__) <= set(dir(C))
