"""Settings: the only module that reads environment variables (prefix ``CERULEUM_``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_threads() -> int:
    return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CERULEUM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path.home() / ".ceruleum"

    # Chat/completion models: built-in names or paths to GGUF files. Empty means the default.
    models: list[str] = Field(default_factory=list)
    # Embedding model: a built-in name, a sentence-transformers directory, or "" to disable.
    embedding_model: str = "all-minilm-l6-v2"

    # Engine sizing.
    context_window: int = 8192  # per sequence, capped by the model's training context
    kv_cache_tokens: int = 16384  # shared KV pool of one engine, in tokens
    max_running_sequences: int = 32  # sequences decoded together in one batch
    max_batch_tokens: int = 512  # tokens per engine step (decode tokens + prefill chunks)
    n_threads: int = Field(default_factory=_default_threads)

    # Request limits.
    max_body_bytes: int = 8 * 1024 * 1024
    max_n: int = 16
    max_stop_sequences: int = 16
    max_top_logprobs: int = 20
    max_embedding_inputs: int = 2048

    log_level: str = "info"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags) on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)  # type: ignore[arg-type]
