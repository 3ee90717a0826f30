import re
import tomllib
import yaml

from tests.helpers import ROOT

CONDA_NAMES = {"torch": "pytorch", "open_clip_torch": "open-clip-torch"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req, maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {CONDA_NAMES.get(_name(r), _name(r)).replace("_", "-"): r
              for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and _name(dep) not in ("python", "pip"):
            listed[_name(dep).replace("_", "-")] = dep
    assert set(listed) == set(wanted)
    for name, req in wanted.items():  # same version bounds
        assert re.sub(r"^[^<>=!~]+", "", req) == re.sub(r"^[^<>=!~]+", "", listed[name]), name


def test_the_installed_packages_satisfy_the_declared_ranges():
    """What setup installed (torch and torchvision from local wheels, the rest from the registry) is what
    pyproject.toml declares: a range that excludes the build in use fails here, not on a user's machine."""
    from importlib.metadata import version

    from packaging.requirements import Requirement
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in map(Requirement, project["dependencies"]):
        installed = version(req.name).split("+")[0]  # a local build's tag (+cu130) is not part of the range
        assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} outside {req.specifier}"


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text().splitlines()[:15]
    text = "\n".join(head)
    assert "scripts/setup.sh" in text and "scripts/test.sh" in text and "pretrain.ipynb" in text
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
