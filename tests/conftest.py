"""Shared fixtures: a real server process with the real bundled models, on a free port."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# A deadline, not a wait: loading the model and the content classifier takes ~20 s on a quiet
# 2-core machine, and several times that on a loaded one.
SERVER_START_TIMEOUT_S = 300
_OFF = {"hate": "off", "sexual": "off", "violence": "off", "self_harm": "off"}
# Served models called by id annotate without filtering on test servers: the classifier's false
# positives on the small model's odd text must not make unrelated tests flaky. Content filtering
# itself is tested through deployments, which keep Azure's default (e2e/test_content_filter.py).
ANNOTATE_ONLY_POLICY = {"prompt": {**_OFF, "jailbreak": False}, "completion": _OFF}
ANNOTATE_ONLY = json.dumps(ANNOTATE_ONLY_POLICY)
# A server of its own for one test module: no embeddings model, a small engine.
SMALL_ENGINE = {
    "CERULEUM_EMBEDDING_MODEL": "",
    "CERULEUM_KV_CACHE_TOKENS": "4096",
    "CERULEUM_MAX_RUNNING_SEQUENCES": "8",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    base_url: str  # e.g. http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path  # the server's CERULEUM_DATA_DIR
    admin_key: str  # the platform admin key it was started with

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    @property
    def api_key(self) -> str:
        """A key that may call everything (the admin key)."""
        return self.admin_key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp: Path, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    full_env = {
        **os.environ,
        "CERULEUM_DATA_DIR": str(tmp / "data"),
        "CERULEUM_ADMIN_KEY": "test-admin-" + secrets.token_hex(16),
        "CERULEUM_CONTENT_FILTER_DEFAULT_POLICY": ANNOTATE_ONLY,
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ceruleum", "serve", "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    data_dir = Path(full_env["CERULEUM_DATA_DIR"])
    server = ServerProcess(
        f"http://127.0.0.1:{port}", process, log_path, data_dir, full_env["CERULEUM_ADMIN_KEY"]
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            health = httpx.get(server.base_url + "/health", timeout=1)
            # Ready, with the content classifier loaded: a first request would wait for it.
            if health.status_code == 200 and health.json().get("content_filter") != "loading":
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")


def stop_server(server: ServerProcess) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real `ceruleum serve` process with the bundled chat and embedding models."""
    proc = start_server(tmp_path_factory.mktemp("server"))
    yield proc
    stop_server(proc)


MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
