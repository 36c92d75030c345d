"""The sentence encoders the content classifier reads with, both from the bundled
all-MiniLM-L6-v2: the transformer itself (full stage) and its static distillation (fast stage,
made by the training script with model2vec and shipped in ceruleum/safety/models/)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceruleum.engine.registry import resolve_embedding_model
from ceruleum.safety.classifier import Array, models_dir

ENCODER_MODEL = "all-minilm-l6-v2"
STATIC_DIR = "minilm-static"


def minilm_path() -> Path:
    return resolve_embedding_model(ENCODER_MODEL).path


class TransformerEncoder:
    """MiniLM through sentence-transformers, normalised."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        from sentence_transformers import SentenceTransformer

        self._model: Any = SentenceTransformer(str(minilm_path()), device="cpu")

    def embed(self, texts: Sequence[str]) -> Array:
        vectors = self._model.encode(
            list(texts),
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

    def embed(self, texts: Sequence[str]) -> Array:
        vectors = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        out: Array = vectors / np.maximum(norms, 1e-12)
        return out
