"""Gateway faults and refusals through a real server: provider overrides, Redis down."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL, ServerProcess, start_server, stop_server

pytestmark = pytest.mark.slow

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


@pytest.mark.parametrize("field", ["api_base", "base_url", "azure_endpoint", "api_key"])
def test_provider_override_fields_are_refused(server: ServerProcess, field: str) -> None:
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        body = {**CHAT, "prompt": "x", "input": "x", field: "http://169.254.169.254/"}
        response = httpx.post(server.base_url + path, json=body, headers=server.headers, timeout=60)
        assert response.status_code == 400, response.text
        assert field in response.json()["error"]["message"]


def test_quota_store_down_is_a_503_with_retry_after(tmp_path: Path) -> None:
    proc = start_server(
        tmp_path,
        env={
            "CERULEUM_REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there
            "CERULEUM_EMBEDDING_MODEL": "",
            "CERULEUM_KV_CACHE_TOKENS": "4096",
        },
    )
    try:
        response = httpx.post(
            proc.v1 + "/chat/completions", json=CHAT, headers=proc.headers, timeout=60
        )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "quota_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        assert "Traceback" not in proc.log()
        assert httpx.get(proc.base_url + "/health", timeout=10).status_code == 200
    finally:
        stop_server(proc)
