"""Settings: the only module that reads environment variables (prefix ``CERULEUM_``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from ceruleum.safety.precision import PrecisionSetting


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
    # PyTorch's threads for MiniLM (embeddings, the content filter's full stage). The engine
    # decodes on every core, and more torch threads then fight it for the same cores (on 2
    # cores, 2 threads added 46 ms to a filtered chat request, 1 thread 12-18 ms; see
    # docs/benchmarks.md).
    torch_threads: int = Field(default=1, ge=1)

    # Request limits.
    max_body_bytes: int = 8 * 1024 * 1024
    max_n: int = 16
    max_stop_sequences: int = 16
    max_top_logprobs: int = 20
    max_embedding_inputs: int = 2048

    # Control plane: SQLite in data_dir unless a URL is given (postgresql://... works too).
    database_url: str | None = None
    # Shared quota counters for several gateway processes; in-process counters when unset.
    redis_url: str | None = None

    # Gateway. The platform admin key must be set (and not the development default) unless the
    # server runs in development mode, which says so loudly.
    admin_key: SecretStr = SecretStr("")
    dev_mode: bool = False
    # Auth, quotas and metering on every request. Off only for benchmarks, in development mode.
    gateway_enabled: bool = True
    # Authenticated keys stay in memory at most this long (0: read the store on every request).
    # Every key change empties the cache before its next request (gateway/key_cache.py).
    key_cache_max_age_s: float = Field(default=60.0, ge=0)
    # Content filtering (Azure's Responsible AI filters) on every prompt and completion. Off
    # only for benchmarks, in development mode.
    content_filter_enabled: bool = True
    # Analyzers by name: the built-ins, or plugins registered under `ceruleum.safety_analyzers`.
    content_filter_analyzers: list[str] = Field(
        default_factory=lambda: ["classifier", "profanity", "blocklists"]
    )
    # The policy (JSON, as a deployment's `content_filter`) for requests that call a served model
    # by its id rather than through a deployment; unset: Azure's default.
    content_filter_default_policy: str | None = None
    # The classifier's MiniLM: "auto" (bfloat16 where the CPU multiplies it natively, else
    # safety/precision.py's choice), "float32", "bfloat16" or "int8" (docs/safety.md, "Precision").
    content_filter_precision: PrecisionSetting = "auto"
    # Streamed text is released after each check of about this many characters.
    content_filter_stream_chars: int = Field(default=120, ge=1)
    # A served model used directly (not through a named deployment) gets this quota.
    default_tokens_per_minute: int = 120_000
    # Browser origins allowed to call the API (never "*": keys travel in headers).
    cors_origins: list[str] = Field(default_factory=list)

    log_level: str = "info"


class InvalidSettingsError(ValueError):
    """A setting from the environment or the command line that does not validate."""


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags) on top.
    Raises InvalidSettingsError, naming each bad setting but never its value (it may be a key)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"CERULEUM_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidSettingsError(f"invalid settings: {problems}") from None
    except (
        SettingsError
    ) as exc:  # a value that is not even parseable (e.g. a list that is not JSON)
        raise InvalidSettingsError(f"invalid settings: {exc}") from None
