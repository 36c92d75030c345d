"""Loading sentence-transformers models: one copy per path and precision, on the torch threads the
server asked for (in a fresh process: torch's thread count is process-wide)."""

from __future__ import annotations

import subprocess
import sys

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
