"""The sentence encoders the content classifier reads with, both from the bundled
all-MiniLM-L6-v2: the transformer itself (full stage) and its static distillation (fast stage,
made by the training script with model2vec and shipped in ceruleum/safety/models/)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceruleum.engine.registry import resolve_embedding_model
from ceruleum.engine.sentence_models import load_sentence_transformer
from ceruleum.safety.batching import CLASSIFIER_RUN_CHARS, SharedBatches
from ceruleum.safety.classifier import Array, models_dir
from ceruleum.safety.precision import PrecisionSetting, classifier_precision

ENCODER_MODEL = "all-minilm-l6-v2"
STATIC_DIR = "minilm-static"


def minilm_path() -> Path:
    return resolve_embedding_model(ENCODER_MODEL).path


class TransformerEncoder:
    """MiniLM through sentence-transformers, normalised; concurrent requests share batches.

    In the precision `safety/precision.py` chooses. In bfloat16 (where native) a short text
    then takes ~7.5 ms instead of ~11 ms on one core, and the embeddings agree with float32's to
    a cosine of 0.9999 (the evaluation in docs/safety.md is run this way). This copy is the
    classifier's own (~45 MB); the embeddings endpoint keeps float32.
    """

    def __init__(self, precision: PrecisionSetting = "auto") -> None:
        self._shared = load_sentence_transformer(minilm_path(), classifier_precision(precision))
        self._batches = SharedBatches(self._encode, max_chars=CLASSIFIER_RUN_CHARS)

    def embed(self, texts: Sequence[str]) -> Array:
        return self._batches.encode(texts)

    def _encode(self, texts: list[str]) -> Array:
        with self._shared.lock:
            vectors = self._shared.model.encode(
                texts,
                batch_size=64,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


class StaticEncoder:
    """model2vec static embeddings (a token-vector lookup and a mean), normalised."""

    def __init__(self, path: Path | None = None) -> None:
        from model2vec import StaticModel

        self._model: Any = StaticModel.from_pretrained(str(path or models_dir() / STATIC_DIR))
        # Each encode sets the fast tokenizer's truncation, which fails ("Already borrowed")
        # while another thread is inside it; an encode takes microseconds.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Array:
        with self._lock:
            encoded = self._model.encode(list(texts))
        vectors = np.asarray(encoded, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        out: Array = vectors / np.maximum(norms, 1e-12)
        return out
