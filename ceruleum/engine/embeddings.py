"""Sentence embeddings on the CPU (sentence-transformers), off the event loop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ceruleum.engine.registry import ModelSpec
from ceruleum.engine.sentence_models import SharedModel, load_sentence_transformer

# Tokens a slice of an embeddings request holds the model for: about a quarter of a second in
# float32 on one core, as long as the content filter may then wait for it.
RUN_TOKENS = 1_024


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
        model = self._ready().model
        # sentence-transformers 5 renamed it (the old name warns); older releases lack the new.
        getter = getattr(model, "get_embedding_dimension", None)
        return int(getter() if getter else model.get_sentence_embedding_dimension())

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
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        # Slice by slice, shortest first (slices of like length pad little), taking the model's
        # lock for each: the content filter may read with this very model, and a request of
        # 2,048 long inputs takes minutes on two cores.
        order = sorted(range(len(texts)), key=lambda i: counts[i])
        for chosen in _slices(order, counts, RUN_TOKENS):
            with shared.lock:
                vectors = model.encode(
                    [texts[i] for i in chosen],
                    batch_size=len(chosen),
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            out[chosen] = np.asarray(vectors, dtype=np.float32)
        return EmbeddingResult(out, sum(counts))


def _slices(order: list[int], counts: list[int], budget: int) -> list[list[int]]:
    """`order` cut into runs of at most `budget` tokens (at least one input each)."""
    slices: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index in order:
        if current and tokens + counts[index] > budget:
            slices.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += counts[index]
    if current:
        slices.append(current)
    return slices
