"""Fill-in-the-middle (`suffix`) through the real path, with a model whose GGUF declares FIM tokens.

The bundled SmolLM2 GGUF declares none, so this test makes a copy whose metadata names three of
its control tokens as FIM prefix, suffix and middle (with llama.cpp's own `gguf` package). The
model was not trained for FIM, so the test checks the mechanism (the tokens come from the GGUF's
metadata, the prompt is assembled around them, generation runs), not the quality of the infill.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import httpx
import pytest
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata
from openai import OpenAI

from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.registry import resolve_chat_model
from tests.conftest import ServerProcess, start_server, stop_server

pytestmark = pytest.mark.slow

FIM_IDS = {"fim_pre": 3, "fim_suf": 4, "fim_mid": 5}  # <repo_name>, <reponame>, <file_sep>
MODEL_ID = "smollm2-with-fim"


@pytest.fixture(scope="module")
def fim_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = resolve_chat_model("smollm2-135m-instruct").path
    target = tmp_path_factory.mktemp("fim") / f"{MODEL_ID}.gguf"
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, arch=reader.get_field("general.architecture").contents())
    u32 = gguf.GGUFValueType.UINT32
    new = {
        f"tokenizer.ggml.{name}_token_id": MetadataDetails(u32, i) for name, i in FIM_IDS.items()
    }
    copy_with_new_metadata(reader, writer, new, [])
    return target


@pytest.fixture(scope="module")
def fim_server(fim_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("fim-server"),
        "--model",
        str(fim_gguf),
        env={"CERULEUM_EMBEDDING_MODEL": "", "CERULEUM_KV_CACHE_TOKENS": "4096"},
    )
    yield proc
    stop_server(proc)


def test_fim_tokens_come_from_the_gguf_metadata(fim_gguf: Path) -> None:
    model = LlamaModel(fim_gguf)
    try:
        assert model.fim_token_ids() == (3, 4, 5)
    finally:
        model.close()


def test_suffix_is_served_with_the_models_fim_tokens(
    fim_server: ServerProcess, fim_gguf: Path
) -> None:
    client = OpenAI(base_url=fim_server.v1, api_key=fim_server.api_key, max_retries=0, timeout=120)
    prefix, suffix = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"
    completion = client.completions.create(
        model=MODEL_ID, prompt=prefix, suffix=suffix, max_tokens=8, temperature=0
    )
    choice = completion.choices[0]
    assert choice.finish_reason in {"stop", "length"}
    assert isinstance(choice.text, str)
    model = LlamaModel(fim_gguf)
    try:
        expected = (
            len(model.tokenize(prefix, add_special=False, parse_special=False))
            + len(model.tokenize(suffix, add_special=False, parse_special=False))
            + 3  # <fim_prefix>, <fim_suffix>, <fim_middle>
        )
    finally:
        model.close()
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == expected
    assert 1 <= completion.usage.completion_tokens <= 8

    card = httpx.get(
        fim_server.v1 + f"/models/{MODEL_ID}", headers=fim_server.headers, timeout=10
    ).json()
    assert card["capabilities"]["fill_in_the_middle"] is True


def test_suffix_streams_too(fim_server: ServerProcess) -> None:
    client = OpenAI(base_url=fim_server.v1, api_key=fim_server.api_key, max_retries=0, timeout=120)
    stream = client.completions.create(
        model=MODEL_ID, prompt="x = ", suffix="\n", max_tokens=5, temperature=0, stream=True
    )
    reasons = [c.choices[0].finish_reason for c in stream if c.choices]
    assert reasons and reasons[-1] in {"stop", "length"}
