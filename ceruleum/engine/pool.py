"""The loaded models of one server: one AsyncEngine per chat model, plus the embedding model."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

from ceruleum import __version__
from ceruleum.engine.async_engine import AsyncEngine, EngineConfig
from ceruleum.engine.chat_template import ChatTemplate
from ceruleum.engine.embeddings import EmbeddingModel
from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.registry import (
    DEFAULT_CHAT_MODEL,
    ModelSpec,
    UnknownModelError,
    resolve_chat_model,
    resolve_embedding_model,
)
from ceruleum.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ChatModel:
    spec: ModelSpec
    model: LlamaModel
    engine: AsyncEngine
    template: ChatTemplate
    created: int
    system_fingerprint: str
    fim_tokens: tuple[int, int, int] | None = field(default=None)

    @property
    def context_window(self) -> int:
        return self.engine.context_window


def _fingerprint(spec: ModelSpec) -> str:
    digest = hashlib.sha256(f"{spec.id}:{spec.path.stat().st_size}:{__version__}".encode())
    return "fp_" + digest.hexdigest()[:10]


class ModelPool:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.chat_models: dict[str, ChatModel] = {}
        self.embedding_models: dict[str, EmbeddingModel] = {}

    def load(self) -> None:
        """Load every configured model (call from within the running event loop)."""
        names = self._settings.models or [DEFAULT_CHAT_MODEL]
        for name in names:
            spec = resolve_chat_model(name)
            if spec.id in self.chat_models:
                raise ValueError(f"two models resolve to the same id {spec.id!r}")
            self.chat_models[spec.id] = self._load_chat(spec)
        if self._settings.embedding_model:
            spec = resolve_embedding_model(self._settings.embedding_model)
            embedder = EmbeddingModel(spec)
            embedder.start_loading()
            self.embedding_models[spec.id] = embedder

    def _load_chat(self, spec: ModelSpec) -> ChatModel:
        started = time.perf_counter()
        model = LlamaModel(spec.path)
        s = self._settings
        engine = AsyncEngine(
            model,
            EngineConfig(
                context_window=s.context_window,
                kv_cache_tokens=s.kv_cache_tokens,
                max_sequences=s.max_running_sequences,
                max_batch_tokens=s.max_batch_tokens,
                n_threads=s.n_threads,
            ),
        )
        engine.start()
        template = ChatTemplate(
            model.chat_template,
            bos_token=model.piece_text(model.bos_id),
            eos_token=model.piece_text(model.eos_id),
        )
        logger.info(
            "loaded %s (%s) in %.1fs, context window %d",
            spec.id,
            spec.path.name,
            time.perf_counter() - started,
            engine.context_window,
        )
        return ChatModel(
            spec=spec,
            model=model,
            engine=engine,
            template=template,
            created=int(spec.path.stat().st_mtime),
            system_fingerprint=_fingerprint(spec),
            fim_tokens=model.fim_token_ids(),
        )

    def shutdown(self) -> None:
        for chat in self.chat_models.values():
            chat.engine.shutdown()
            chat.model.close()
        self.chat_models.clear()

    def chat(self, model_id: str) -> ChatModel:
        try:
            return self.chat_models[model_id]
        except KeyError:
            raise UnknownModelError(model_id) from None

    def embedding(self, model_id: str) -> EmbeddingModel:
        try:
            return self.embedding_models[model_id]
        except KeyError:
            raise UnknownModelError(model_id) from None

    @property
    def healthy(self) -> bool:
        return all(chat.engine.alive for chat in self.chat_models.values())
