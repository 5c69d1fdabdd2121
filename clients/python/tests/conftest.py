"""A real progress-advantage-server for the client's tests.

With PA_TEST_BASE_URL set (and PA_TEST_API_KEY when it has a key), the tests use that server.
Otherwise one is started from this checkout, as a user starts it (`pa-server serve` from the
TypeScript sources through tsx, the embedded default pair, an API key), on a free loopback port,
and stopped after the session.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request

import pytest

from progress_advantage import Client

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
API_KEY = "python-client-test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, log_path: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}) before it was ready:\n{open(log_path).read()}")
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout} s:\n{open(log_path).read()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """(base_url, api_key) of a running server."""
    given = os.environ.get("PA_TEST_BASE_URL")
    if given:
        yield given.rstrip("/"), os.environ.get("PA_TEST_API_KEY")
        return
    port = _free_port()
    log_path = str(tmp_path_factory.mktemp("server") / "server.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PA_")}
    env.update(PA_LOG_LEVEL="warn", PA_THREADS="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["node", "--import", "tsx", "src/cli.ts", "serve", "--port", str(port), "--api-key", API_KEY],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log_path)
        yield url, API_KEY
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def client(server) -> Client:
    url, key = server
    return Client(url, api_key=key, timeout=60)
