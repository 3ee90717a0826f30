"""Whether a download can be tried at all, decided before any work.

Without this, an offline machine spends tens of seconds in a downloader's retries (huggingface_hub,
torch.hub) before the error comes, after the model it was meant for has been built.
"""
from __future__ import annotations

import os
import socket
import threading
import urllib.request
from urllib.parse import urlparse

# the values huggingface_hub itself reads as true in HF_HUB_OFFLINE
_TRUE = {"1", "true", "yes", "on"}
PROBE_TIMEOUT_S = 3.0
PUBLIC_HUB = "https://huggingface.co"


def offline_flag() -> str | None:
    """The environment variable that puts this process offline (``HF_HUB_OFFLINE`` or
    ``MILAN_LAB_OFFLINE`` set to a true value, as ``NAME=VALUE``), or None."""
    for name in ("HF_HUB_OFFLINE", "MILAN_LAB_OFFLINE"):
        value = os.environ.get(name, "")
        if value.strip().lower() in _TRUE:
            return f"{name}={value}"
    return None


def hub_endpoint() -> str:
    """The Hugging Face hub's address downloads go to: ``HF_ENDPOINT`` (a mirror), else huggingface_hub's
    ``constants.ENDPOINT``."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    if not endpoint:
        from huggingface_hub import constants
        endpoint = constants.ENDPOINT
    return endpoint.rstrip("/")


def on_hub_endpoint(url: str) -> str:
    """``url`` with the public hub's address replaced by :func:`hub_endpoint` (where huggingface_hub
    will really connect); other URLs unchanged."""
    return hub_endpoint() + url[len(PUBLIC_HUB):] if url.startswith(PUBLIC_HUB + "/") else url


def via_proxy(host: str) -> bool:
    """Whether a connection to ``host`` goes through a proxy: ``HTTPS_PROXY``, ``HTTP_PROXY`` or
    ``ALL_PROXY`` set (either case, as urllib and requests read them) and ``host`` not in ``NO_PROXY``."""
    proxies = urllib.request.getproxies_environment()
    if not any(proxies.get(scheme) for scheme in ("https", "http", "all")):
        return False
    return not urllib.request.proxy_bypass_environment(host, proxies)


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``url`` cannot be downloaded now (offline mode, or its host does not answer a TCP
    connection within ``timeout`` seconds), or None when a download may be tried. A hub URL is
    probed at the hub's configured endpoint (``HF_ENDPOINT``); behind a proxy nothing is probed (the
    proxy, not this machine, connects to the host), only offline mode is refused.

    The probe runs in a daemon thread so that a name lookup that hangs (no DNS answer) is cut off
    at ``timeout`` too; ``socket.create_connection``'s own timeout does not cover the lookup."""
    flag = offline_flag()
    if flag:
        return f"offline mode ({flag})"
    parsed = urlparse(on_hub_endpoint(url))
    host, port = parsed.hostname, parsed.port or (80 if parsed.scheme == "http" else 443)
    if not host or via_proxy(host):
        return None  # through a proxy, the host's own port may well be closed to this machine: no verdict
    failure: list[str] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as e:
            failure.append(e.strerror or type(e).__name__)
        else:
            failure.append("")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if not failure:
        return f"no network ({host} did not answer within {timeout:g} s)"
    return f"no network ({host}: {failure[0]})" if failure[0] else None
