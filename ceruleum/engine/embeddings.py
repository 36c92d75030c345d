"""Sentence embeddings on the CPU (sentence-transformers), off the event loop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ceruleum.engine.registry import ModelSpec
from ceruleum.engine.sentence_models import SharedModel, load_sentence_transformer


class InputTooLongError(Exception):
    def __init__(self, index: int, tokens: int, limit: int) -> None:
        self.index, self.tokens, self.limit = index, tokens, limit
        super().__init__(
            f"input[{index}] has {tokens} tokens; this model's maximum context length is "
            f"{limit} tokens"
        )


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    vectors: npt.NDArray[np.float32]
    prompt_tokens: int


class EmbeddingModel:
    """Loads lazily in a background thread so the server is ready before the model is."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._shared: SharedModel | None = None
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None

    def start_loading(self) -> None:
        threading.Thread(target=self._load, name="ceruleum-embeddings", daemon=True).start()

    def _load(self) -> None:
        try:
            self._shared = load_sentence_transformer(self.spec.path)
        except BaseException as exc:
            self._load_error = exc
        finally:
            self._loaded.set()

    @property
    def max_tokens(self) -> int:
        return int(self._ready().model.max_seq_length)

    @property
    def dimensions(self) -> int:
        return int(self._ready().model.get_sentence_embedding_dimension())

    def _ready(self) -> SharedModel:
        self._loaded.wait()
        if self._shared is None:
            raise RuntimeError(f"embedding model failed to load: {self._load_error}")
        return self._shared

    async def embed(self, texts: list[str]) -> EmbeddingResult:
        return await asyncio.to_thread(self._embed_sync, texts)

    def _embed_sync(self, texts: list[str]) -> EmbeddingResult:
        shared = self._ready()
        model = shared.model
        limit = int(model.max_seq_length)
        with shared.lock:
            counts = [len(ids) for ids in model.tokenizer(texts, truncation=False)["input_ids"]]
            for index, count in enumerate(counts):
                if count > limit:
                    raise InputTooLongError(index, count, limit)
            vectors = model.encode(
                texts,
                batch_size=32,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return EmbeddingResult(np.asarray(vectors, dtype=np.float32), sum(counts))
