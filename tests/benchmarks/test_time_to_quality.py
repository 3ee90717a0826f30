"""benchmarks/time_to_quality.py checks every --candidate before the first run: one line naming the candidate
and the key at fault, nothing printed or written."""
import subprocess
import sys

import pytest

from tests.helpers import ROOT, env


@pytest.mark.parametrize("candidate, named", [  # named: what the line must name besides the candidate
    ('{"epochs": 2', "JSON"),
    ('{"epoch": 2}', "'epoch'"),
    ('{"mask_ratio": 2}', "'mask_ratio'"),
    ("[1]", "JSON object"),
])
def test_time_to_quality_checks_every_candidate_before_training(candidate, named, tmp_path):
    out = tmp_path / "ttq"
    done = subprocess.run([sys.executable, "benchmarks/time_to_quality.py", "--candidate", '{"epochs": 3}',
                           "--candidate", candidate, "--out", str(out)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("time_to_quality: error: --candidate 2") and named in done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""  # one line, nothing else printed
    assert not out.exists()  # refused before the first run (the reference) wrote anything
