"""The download probe (io/network.py): behind a proxy no direct connection is tried, and the hub is probed at
its configured endpoint."""
import os

import pytest


@pytest.fixture
def clean_network_env(monkeypatch):
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name in ("HF_HUB_OFFLINE", "MILAN_LAB_OFFLINE", "HF_ENDPOINT"):
            monkeypatch.delenv(name)
    from milan_lab.io import network
    calls = []

    def connect(address, timeout=None):
        calls.append(address)
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(network.socket, "create_connection", connect)
    return network, calls


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"])
def test_behind_a_proxy_no_direct_probe_is_made(clean_network_env, monkeypatch, name):
    network, calls = clean_network_env
    monkeypatch.setenv(name, "http://proxy.example:3128")
    assert network.unreachable("https://huggingface.co/org/model/resolve/main/weights.bin", timeout=0.5) is None
    assert network.unreachable("https://download.pytorch.org/models/x.pth", timeout=0.5) is None
    assert calls == []  # the direct connection would have said "no network"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline mode still refuses at once
    assert "HF_HUB_OFFLINE" in network.unreachable("https://huggingface.co/org/model/resolve/main/weights.bin")
    assert calls == []


def test_the_hub_is_probed_at_its_configured_endpoint(clean_network_env, monkeypatch):
    network, calls = clean_network_env
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example:8443/")
    reason = network.unreachable("https://huggingface.co/org/model/resolve/main/weights.bin", timeout=2)
    assert calls == [("hf-mirror.example", 8443)] and "hf-mirror.example" in reason
    calls.clear()
    network.unreachable("https://download.pytorch.org/models/x.pth", timeout=2)  # not the hub: its own host
    assert calls == [("download.pytorch.org", 443)]
