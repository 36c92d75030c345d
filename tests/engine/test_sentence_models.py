"""Loading sentence-transformers models: one copy per path and precision, on the torch threads the
server asked for (in a fresh process: torch's thread count is process-wide)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ceruleum.engine.sentence_models import load_sentence_transformer, use_torch_threads
from ceruleum.safety.encoder import minilm_path

CHILD = """
import threading, torch
from ceruleum.engine.sentence_models import load_sentence_transformer, use_torch_threads
from ceruleum.safety.encoder import minilm_path
use_torch_threads(1)
shared = load_sentence_transformer(minilm_path())
seen = []
worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
worker.start(); worker.join()
shared.model.encode(["hello"])
print(torch.get_num_threads(), seen[0])
"""


def test_models_load_on_the_torch_threads_asked_for() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.split()[-2:] == ["1", "1"]


def test_one_copy_per_path_and_precision() -> None:
    first = load_sentence_transformer(minilm_path(), "float32")
    assert load_sentence_transformer(minilm_path(), "float32") is first
    assert load_sentence_transformer(minilm_path(), "bfloat16") is not first


def test_a_thread_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        use_torch_threads(0)


def test_an_embeddings_request_read_in_slices_matches_one_pass() -> None:
    from ceruleum.engine.embeddings import RUN_TOKENS, EmbeddingModel, _slices
    from ceruleum.engine.registry import resolve_embedding_model

    assert _slices([2, 0, 1], [5, 7, 9], budget=12) == [[2], [0, 1]]
    assert _slices([0], [50], budget=12) == [[0]]  # longer than the budget: alone
    model = EmbeddingModel(resolve_embedding_model("all-minilm-l6-v2"))
    model.start_loading()
    texts = [
        f"Sentence {i}: " + "the quick brown fox jumps over the lazy dog " * (i % 9)
        for i in range(90)
    ]
    result = model._embed_sync(texts)
    assert result.prompt_tokens > 3 * RUN_TOKENS  # so it was read in several slices
    reference = load_sentence_transformer(minilm_path()).model.encode(
        texts, normalize_embeddings=True, convert_to_numpy=True
    )
    np.testing.assert_allclose(result.vectors, reference, atol=1e-5)
