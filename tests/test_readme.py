"""The README as a user reads it: every name it imports exists, every command it shows answers
--help, every file and document it points to is there, and it stays a guide (not a lab notebook)."""
import importlib
import re

import pytest

from milan_lab.cli import main
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_the_readme_is_a_guide_of_at_most_150_lines():
    assert len(README.splitlines()) <= 150
    assert python_blocks(), "the README shows the Python API"


def test_every_name_the_readme_imports_exists():
    imports = [line for block in python_blocks() for line in block.splitlines() if line.startswith(("from ", "import "))]
    assert imports
    for line in imports:
        namespace = {}
        exec(line, namespace)  # noqa: S102 -- the README's own import lines, nothing else
        assert all(v is not None for k, v in namespace.items() if not k.startswith("__")), line


def test_every_method_the_readme_calls_on_a_milan_model_exists():
    from milan_lab.models.milan import MILAN, MILANOutput
    for name in re.findall(r"milan\.(\w+)\(", "".join(python_blocks())):
        assert hasattr(MILAN, name), name
    for field in re.findall(r"out\.(\w+)", "".join(python_blocks())):
        assert field in MILANOutput._fields, field


def commands() -> list[list[str]]:
    """Each ``milan-lab CMD [SUB]`` the README shows (subcommands joined by ' | ' split apart)."""
    found = set()
    shown = re.findall(r"(?m)^    milan-lab ([^\n]+)", README) + re.findall(r"`milan-lab ([^`]+)`", README)
    for line in shown:
        for part in line.split("|"):
            words = part.split()
            if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
                continue
            cmd = [words[0]]
            if words[0] == "teacher" and len(words) > 1 and words[1] in ("train", "eval"):
                cmd.append(words[1])
            found.add(tuple(cmd))
    return sorted(list(c) for c in found)


@pytest.mark.parametrize("command", commands(), ids=" ".join)
def test_every_command_the_readme_shows_answers_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0 and "usage: milan-lab" in capsys.readouterr().out


def test_every_command_of_the_cli_is_in_the_readme():
    from milan_lab.cli import build_parser
    subcommands = build_parser()._subparsers._group_actions[0].choices
    shown = {c[0] for c in commands()}
    assert set(subcommands) <= shown, set(subcommands) - shown


def test_every_path_and_document_the_readme_names_exists():
    paths = set(re.findall(r"`((?:notebooks|benchmarks|scripts|apps|docs|milan_lab)/[\w./-]+)`", README))
    paths |= set(re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)\)", README))
    assert len(paths) >= 5
    for p in paths:
        assert (ROOT / p).exists(), p


def test_the_layout_table_names_real_modules():
    rows = [line for line in README.splitlines() if line.startswith("| ") and "`" in line and "/" in line]
    for row in rows:
        for pkg, inner in re.findall(r"`(\w+)/` \(([^)]*)\)", row):
            for name in re.findall(r"`(\w+)`", inner):
                assert (ROOT / "milan_lab" / pkg / f"{name}.py").is_file() or hasattr(
                    importlib.import_module(f"milan_lab.{pkg}"), name), f"{pkg}.{name}"


def test_the_readme_python_example_runs_offline():
    """The example's live lines use only what the package ships (the rest is commented: a run folder, downloads)."""
    namespace = {}
    exec(python_blocks()[0], namespace)  # noqa: S102 -- the README's own example
    from milan_lab.data.scenes import SHAPES
    assert namespace["inference_model"](namespace["model"], namespace["scene"])["pred_class"] in SHAPES
    assert namespace["out"].loss.isfinite() and namespace["targets"].shape[:2] == namespace["out"].pred.shape[:2]
