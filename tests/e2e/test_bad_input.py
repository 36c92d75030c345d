"""Bad requests get a clear 4xx in OpenAI's error shape, and the server survives them all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import EMBEDDING_MODEL, MODEL, ServerProcess

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def log_start(server: ServerProcess) -> int:
    """Where the server log stood when this module began."""
    return len(server.log())


@pytest.fixture(scope="module")
def http(server: ServerProcess, log_start: int) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.v1, headers=server.headers, timeout=60) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is `status` with an OpenAI error body; returns the inner error object."""
    assert response.status_code != 500, response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)
    if code is not None:
        assert error["code"] == code, error
    return error


def chat(http: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 5, **fields}
    return http.post("/chat/completions", json=body)


def post_raw(http: httpx.Client, path: str, content: bytes, content_type: str) -> httpx.Response:
    return http.post(path, content=content, headers={"content-type": content_type})


def assert_healthy(server: ServerProcess) -> None:
    response = httpx.get(server.base_url + "/health", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


# --- body shape ------------------------------------------------------------------------------


def test_empty_messages(http: httpx.Client) -> None:
    error = assert_error(chat(http, messages=[]), 400)
    assert error["param"] == "messages"


def test_messages_missing(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json={"model": MODEL})
    error = assert_error(response, 400)
    assert error["param"] == "messages"


@pytest.mark.parametrize("raw", [b"[1,2]", b'"hi"', b"42", b"null"])
def test_body_not_an_object(http: httpx.Client, raw: bytes) -> None:
    assert_error(post_raw(http, "/chat/completions", raw, "application/json"), 400)


@pytest.mark.parametrize("raw", [b'{"model": ', b"{'model': 'x'}", b"", b"{} trailing"])
def test_malformed_json(http: httpx.Client, raw: bytes) -> None:
    assert_error(post_raw(http, "/chat/completions", raw, "application/json"), 400)


def test_unknown_model(http: httpx.Client) -> None:
    error = assert_error(chat(http, model="gpt-17-ultra"), 404, code="model_not_found")
    assert "gpt-17-ultra" in error["message"]
    assert error["param"] == "model"


@pytest.mark.parametrize("model", [[MODEL], {"id": MODEL}, 7, None])
def test_model_wrong_type(http: httpx.Client, model: Any) -> None:
    error = assert_error(chat(http, model=model), 400)
    assert error["param"] == "model"


def test_unknown_model_in_each_endpoint(http: httpx.Client) -> None:
    response = http.post("/completions", json={"model": "nope", "prompt": "x", "max_tokens": 2})
    assert_error(response, 404, code="model_not_found")
    response = http.post("/embeddings", json={"model": "nope", "input": "x"})
    assert_error(response, 404, code="model_not_found")
    # A chat model is not an embedding model and vice versa.
    response = http.post("/embeddings", json={"model": MODEL, "input": "x"})
    assert_error(response, 404, code="model_not_found")
    response = chat(http, model=EMBEDDING_MODEL)
    assert_error(response, 404, code="model_not_found")


# --- parameter ranges ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1, 17, 1_000_000])
def test_bad_n(http: httpx.Client, n: int) -> None:
    error = assert_error(chat(http, n=n), 400)
    assert error["param"] == "n"


@pytest.mark.parametrize("max_tokens", [0, -5])
def test_bad_max_tokens(http: httpx.Client, max_tokens: int) -> None:
    error = assert_error(chat(http, max_tokens=max_tokens), 400)
    assert error["param"] == "max_tokens"
    error = assert_error(chat(http, max_tokens=None, max_completion_tokens=max_tokens), 400)
    assert error["param"] == "max_completion_tokens"


def test_max_tokens_beyond_context(http: httpx.Client) -> None:
    ok = chat(http, max_tokens=1)
    assert ok.status_code == 200, ok.text
    prompt_tokens = ok.json()["usage"]["prompt_tokens"]
    error = assert_error(chat(http, max_tokens=10**9), 400)
    assert "8192" in error["message"]
    assert str(prompt_tokens) in error["message"]


def test_max_tokens_at_the_context_boundary(http: httpx.Client) -> None:
    ok = chat(http, max_tokens=1)
    assert ok.status_code == 200, ok.text
    prompt_tokens = ok.json()["usage"]["prompt_tokens"]
    error = assert_error(chat(http, max_tokens=8192 - prompt_tokens + 1), 400)
    assert "8192" in error["message"]
    # Exactly filling the window is allowed: read the first event of the stream, then leave.
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 8192 - prompt_tokens, "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line)
        assert first.startswith("data: {")


def test_top_logprobs_too_many(http: httpx.Client) -> None:
    error = assert_error(chat(http, logprobs=True, top_logprobs=21), 400)
    assert error["param"] == "top_logprobs"


@pytest.mark.parametrize("temperature", [5, -0.5, 2.5])
def test_bad_temperature(http: httpx.Client, temperature: float) -> None:
    error = assert_error(chat(http, temperature=temperature), 400)
    assert error["param"] == "temperature"


# "²" and "¹" are str.isdigit() but not int()-parsable: they must be a 400 like any other bad key.
@pytest.mark.parametrize("key", ["999999999", "-1", "abc", "49152", "", "1.5", "²", "-¹"])
def test_bad_logit_bias_key(http: httpx.Client, key: str) -> None:
    error = assert_error(chat(http, logit_bias={key: 5}), 400)
    assert error["param"] == "logit_bias"


def test_too_many_stop_strings(http: httpx.Client) -> None:
    stop = [f"stop{i}" for i in range(10000)]
    error = assert_error(chat(http, stop=stop), 400)
    assert error["param"] == "stop"


def test_prompt_over_context_window(http: httpx.Client) -> None:
    response = chat(http, messages=[{"role": "user", "content": "hello " * 20000}], max_tokens=None)
    error = assert_error(response, 400, code="context_length_exceeded")
    assert "8192" in error["message"]
    # The message gives the prompt's token count, which is well over the window.
    numbers = [int(w) for w in error["message"].replace("(", " ").split() if w.isdigit()]
    assert any(n > 8192 for n in numbers), error["message"]


def test_health_midway(server: ServerProcess, http: httpx.Client) -> None:
    assert_healthy(server)
    ok = chat(http, max_tokens=3)
    assert ok.status_code == 200, ok.text


# --- encoding, size, media type --------------------------------------------------------------


def test_invalid_utf8(http: httpx.Client) -> None:
    raw = (
        b'{"model": "'
        + MODEL.encode()
        + b'", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    )
    assert_error(post_raw(http, "/chat/completions", raw, "application/json"), 400)


def with_lone_surrogate(body: dict[str, Any]) -> bytes:
    """The body as JSON text where every "@@" became the escape of a lone UTF-16 surrogate."""
    return json.dumps(body).replace("@@", "\\ud800").encode()


def test_lone_surrogate(http: httpx.Client) -> None:
    raw = with_lone_surrogate({"model": MODEL, "messages": [{"role": "user", "content": "a@@b"}]})
    assert b"\\ud800" in raw
    error = assert_error(post_raw(http, "/chat/completions", raw, "application/json"), 400)
    assert "surrogate" in error["message"]
    # Also for legacy completions and embeddings.
    raw = with_lone_surrogate({"model": MODEL, "prompt": "@@", "max_tokens": 2})
    assert_error(post_raw(http, "/completions", raw, "application/json"), 400)
    raw = with_lone_surrogate({"model": EMBEDDING_MODEL, "input": ["ok", "@@"]})
    assert_error(post_raw(http, "/embeddings", raw, "application/json"), 400)


def test_body_too_large(http: httpx.Client) -> None:
    content = b" " * (10 * 1024 * 1024)
    response = post_raw(http, "/chat/completions", content, "application/json")
    assert_error(response, 413)


def test_body_too_large_without_content_length(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * (1024 * 1024)

    response = http.post(
        "/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413)


def test_wrong_content_type(http: httpx.Client) -> None:
    body = json.dumps({"model": MODEL, "messages": HELLO, "max_tokens": 2}).encode()
    assert_error(post_raw(http, "/chat/completions", body, "text/plain"), 415)
    form = http.post("/chat/completions", data={"model": MODEL, "messages": "hi"})
    assert form.request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert_error(form, 415)
    no_type = http.post("/chat/completions", content=body, headers={"content-type": ""})
    assert_error(no_type, 415)


def test_json_content_type_with_charset_is_accepted(http: httpx.Client) -> None:
    body = json.dumps({"model": MODEL, "messages": HELLO, "max_tokens": 2}).encode()
    response = post_raw(http, "/chat/completions", body, "application/json; charset=utf-8")
    assert response.status_code == 200, response.text


# --- completions and embeddings --------------------------------------------------------------


def test_completion_empty_prompt(http: httpx.Client) -> None:
    response = http.post("/completions", json={"model": MODEL, "prompt": "", "max_tokens": 2})
    assert_error(response, 400)
    response = http.post("/completions", json={"model": MODEL, "prompt": [], "max_tokens": 2})
    assert_error(response, 400)


@pytest.mark.parametrize("bad", [10**7, -1, 49152])
def test_completion_token_out_of_vocabulary(http: httpx.Client, bad: int) -> None:
    response = http.post("/completions", json={"model": MODEL, "prompt": [1, bad], "max_tokens": 2})
    error = assert_error(response, 400)
    assert error["param"] == "prompt"


def test_embeddings_empty_input(http: httpx.Client) -> None:
    response = http.post("/embeddings", json={"model": EMBEDDING_MODEL, "input": []})
    error = assert_error(response, 400)
    assert error["param"] == "input"
    response = http.post("/embeddings", json={"model": EMBEDDING_MODEL, "input": ""})
    error = assert_error(response, 400)
    assert error["param"] == "input"
    response = http.post("/embeddings", json={"model": EMBEDDING_MODEL, "input": ["a", ""]})
    assert_error(response, 400)


# --- routing and nesting ---------------------------------------------------------------------


def test_unknown_route(http: httpx.Client) -> None:
    assert_error(http.get("/no/such/route"), 404)
    assert_error(http.post("/chat/complete", json={}), 404)


def test_wrong_method(http: httpx.Client) -> None:
    assert_error(http.get("/chat/completions"), 405)
    assert_error(http.delete("/embeddings"), 405)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"model": "x", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,
    ],
    ids=["open", "closed", "in-object", "objects"],
)
def test_deeply_nested_json(http: httpx.Client, raw: bytes) -> None:
    assert_error(post_raw(http, "/chat/completions", raw, "application/json"), 400)


def test_server_survived(server: ServerProcess, http: httpx.Client) -> None:
    assert server.process.poll() is None, "the server process exited"
    assert_healthy(server)
    response = chat(http, max_tokens=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] <= 5


def test_no_unhandled_errors_logged(server: ServerProcess, log_start: int) -> None:
    """Every bad request above was anticipated: none reached the catch-all error handler."""
    log = server.log()[log_start:]
    assert "unhandled error" not in log, log[-5000:]
    assert "Traceback" not in log, log[-5000:]
