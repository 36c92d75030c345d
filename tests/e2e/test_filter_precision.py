"""A server whose content classifier runs MiniLM in int8 (CERULEUM_CONTENT_FILTER_PRECISION)
filters as Azure's default policy says, through the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import SMALL_ENGINE, ServerProcess, start_server, stop_server
from tests.e2e.test_content_filter import VIOLENT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int8_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("int8-filter"),
        env={
            **SMALL_ENGINE,
            "CERULEUM_CONTENT_FILTER_PRECISION": "int8",
            "CERULEUM_CONTENT_FILTER_DEFAULT_POLICY": "",  # Azure's default: filter medium+
        },
    )
    yield proc
    stop_server(proc)


def test_an_int8_classifier_filters_and_annotates(int8_server: ServerProcess) -> None:
    assert "content classifier ready (MiniLM in int8)" in int8_server.log()
    client = openai.OpenAI(
        base_url=int8_server.v1, api_key=int8_server.api_key, max_retries=0, timeout=120
    )
    model = client.models.list().data[0].id
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": VIOLENT}], max_tokens=4
        )
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "content_filter"
    violence = error["innererror"]["content_filter_result"]["violence"]
    assert violence["filtered"] is True and violence["severity"] in {"medium", "high"}

    answer = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write a haiku about the sea."}],
        max_tokens=8,
    )
    annotations = (answer.model_extra or {})["prompt_filter_results"][0]["content_filter_results"]
    assert annotations["violence"] == {"filtered": False, "severity": "safe"}
