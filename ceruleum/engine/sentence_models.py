"""sentence-transformers models, loaded once per process and quietly.

The embeddings endpoint and the content classifier both read with the bundled MiniLM: one copy
in memory serves both. Every call goes through its lock: the fast tokenizer under it is not
thread-safe (concurrent calls that set truncation fail with "Already borrowed"), and torch
already spreads one encode over every core. Loading prints nothing: transformers' progress bars
and load report would otherwise land on whatever stderr is current, in server logs and in the
middle of CLI output.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class SharedModel:
    model: Any  # a SentenceTransformer
    lock: threading.Lock = field(default_factory=threading.Lock)  # held for every call


_loading = threading.Lock()
_models: dict[Path, SharedModel] = {}


def load_sentence_transformer(path: Path) -> SharedModel:
    """The model at `path` on the CPU; the same one for every caller in this process."""
    key = path.resolve()
    with _loading:
        shared = _models.get(key)
        if shared is None:
            shared = SharedModel(_load_quietly(key))
            _models[key] = shared
        return shared


def _load_quietly(path: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        return SentenceTransformer(str(path), device="cpu")
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
