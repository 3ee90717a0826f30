"""A real JupyterLab serves the notebooks with the project kernel and the widgets extension."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from tests.helpers import ROOT


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_jupyter_lab_lists_notebooks_kernel_and_widgets():
    port, token = _port(), "milan-lab-test"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, contents = time.time() + 60, None
        while time.time() < deadline and contents is None:
            try:
                contents = _get(f"{base}/api/contents/notebooks?token={token}")
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        names = {c["name"] for c in contents["content"]}
        assert {"pretrain.ipynb", "finetune.ipynb", "linear_probe.ipynb", "teacher.ipynb", "explore.ipynb",
                "tour.ipynb", "ablation.ipynb"} <= names
        specs = _get(f"{base}/api/kernelspecs?token={token}")
        assert "python3" in specs["kernelspecs"]
        extensions = {e["name"] for e in _get(f"{base}/lab/api/extensions?token={token}")}
        assert "jupyter-widgets-jupyterlab-manager" in extensions  # ipywidgets render in JupyterLab 4
    finally:
        proc.terminate()
        proc.wait(timeout=20)
