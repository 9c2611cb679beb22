"""The offline Hub for tests (pytest plugin loaded by conftest.py before anything imports huggingface_hub).

`huggingface_hub` reads HF_ENDPOINT (and builds its download URL template) at import time, so this module
binds the server's two sockets and exports the environment at import; the `hub` fixture serves them and resets
the state for each test, then fails the test if the client sent a request no route knows or a handler crashed.
"""

from __future__ import annotations

import os
import sys
import tempfile

import pytest
from hub_server import READ_TOKEN, USER, WRITE_TOKEN, HubServer, bind_socket

if "huggingface_hub" in sys.modules:  # a plugin imported it first: its endpoint would be the real Hub
    raise RuntimeError("hub_fixtures must load before huggingface_hub is imported (see tests/conftest.py)")

_API_SOCK, _LFS_SOCK = bind_socket(), bind_socket()
HUB_ENDPOINT = f"http://127.0.0.1:{_API_SOCK.getsockname()[1]}"
_HF_HOME = tempfile.mkdtemp(prefix="hf-home-")

os.environ.update(
    {
        "HF_ENDPOINT": HUB_ENDPOINT,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": _HF_HOME,
        "HF_TOKEN": WRITE_TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
)
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HF_TOKEN_PATH", None)

# Serve at once: a client that reaches HF_ENDPOINT outside the `hub` fixture gets an answer, never a hang.
_SERVER = HubServer(_API_SOCK, _LFS_SOCK).start()


@pytest.fixture(scope="session")
def hub_server() -> HubServer:
    """The running offline Hub (one per session; use `hub` in tests, it resets and checks the state)."""
    return _SERVER


@pytest.fixture()
def hub(hub_server: HubServer) -> HubServer:
    """A fresh offline Hub for one test. Fails the test on unrouted requests or server-side crashes."""
    hub_server.reset()
    yield hub_server
    unmatched, errors = list(hub_server.unmatched), list(hub_server.errors)
    hub_server.clear_faults()
    assert not unmatched, f"requests the offline Hub has no route for (client changed?): {unmatched}"
    assert not errors, "offline Hub handler crashed:\n" + "\n".join(errors)


@pytest.fixture()
def hub_tokens() -> dict[str, str]:
    return {"write": WRITE_TOKEN, "read": READ_TOKEN, "user": USER}
