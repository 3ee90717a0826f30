"""The package's layers (pyproject.toml, [tool.importlinter]): dependencies run one way only."""
import shutil
import subprocess

from tests.helpers import ROOT, env


def test_imports_respect_the_layers():
    lint = shutil.which("lint-imports")
    assert lint, "import-linter is a dev dependency (scripts/setup.sh --dev installs it)"
    done = subprocess.run([lint], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 kept, 0 broken" in done.stdout, done.stdout[-3000:]
