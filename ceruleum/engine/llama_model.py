"""A GGUF model loaded through llama.cpp's C API: weights, vocabulary, tokenizer, metadata."""

from __future__ import annotations

import ctypes
import logging
import threading
from functools import lru_cache
from pathlib import Path

import llama_cpp as llama

logger = logging.getLogger(__name__)

_GGML_LOG_LEVEL_WARN = 3
_GGML_LOG_LEVEL_ERROR = 4

_backend_lock = threading.Lock()
_backend_ready = False


@llama.llama_log_callback  # type: ignore[untyped-decorator]
def _forward_llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp is chatty at load time; keep its warnings and errors, drop the rest.
    if level in (_GGML_LOG_LEVEL_WARN, _GGML_LOG_LEVEL_ERROR):
        message = text.decode("utf-8", errors="replace").rstrip()
        if message:
            logger.warning("llama.cpp: %s", message)


def ensure_backend() -> None:
    """Initialise llama.cpp once per process."""
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            llama.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
            llama.llama_backend_init()
            _backend_ready = True


class ModelLoadError(Exception):
    """The file is missing or is not a loadable GGUF model."""


class LlamaModel:
    """Weights and vocabulary of one GGUF model. Thread-safe for tokenization."""

    def __init__(self, path: Path) -> None:
        ensure_backend()
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        params = llama.llama_model_default_params()
        params.use_mmap = True
        model = llama.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ModelLoadError(f"llama.cpp could not load {path}")
        self.path = path
        self.ptr = model
        self.vocab = llama.llama_model_get_vocab(model)
        self.n_vocab: int = llama.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = llama.llama_model_n_ctx_train(model)
        self.add_bos: bool = bool(llama.llama_vocab_get_add_bos(self.vocab))
        self.bos_id: int = llama.llama_vocab_bos(self.vocab)
        self.eos_id: int = llama.llama_vocab_eos(self.vocab)
        self._piece_cache = lru_cache(maxsize=None)(self._piece_uncached)
        self._grammar_cache = lru_cache(maxsize=256)(self._grammar_parses_uncached)

    def close(self) -> None:
        if self.ptr:
            llama.llama_model_free(self.ptr)
            self.ptr = None

    # --- metadata -------------------------------------------------------------------------
    def metadata(self, key: str) -> str | None:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    @property
    def chat_template(self) -> str | None:
        return self.metadata("tokenizer.chat_template")

    def fim_token_ids(self) -> tuple[int, int, int] | None:
        """The (prefix, suffix, middle) token ids for fill-in-the-middle, if the model has them."""
        ids = (
            llama.llama_vocab_fim_pre(self.vocab),
            llama.llama_vocab_fim_suf(self.vocab),
            llama.llama_vocab_fim_mid(self.vocab),
        )
        if all(i >= 0 for i in ids):
            return ids
        # Older GGUFs carry the tokens without the metadata keys: look them up by text.
        by_text = tuple(
            self.special_token_id(t) for t in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
        )
        if all(i is not None for i in by_text):
            return by_text  # type: ignore[return-value]
        return None

    def special_token_id(self, text: str) -> int | None:
        ids = self.tokenize(text, add_special=False, parse_special=True)
        return ids[0] if len(ids) == 1 and self.is_control(ids[0]) else None

    def is_control(self, token_id: int) -> bool:
        return bool(llama.llama_vocab_is_control(self.vocab, token_id))

    def is_end_of_generation(self, token_id: int) -> bool:
        return bool(llama.llama_vocab_is_eog(self.vocab, token_id))

    def end_of_generation_tokens(self) -> list[int]:
        """Every token that ends a generation (llama.cpp keeps no list of them to ask for)."""
        return [t for t in range(self.n_vocab) if self.is_end_of_generation(t)]

    # --- tokenizer ------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (llama.llama_token * capacity)()
        n = llama.llama_tokenize(
            self.vocab, data, len(data), buf, capacity, add_special, parse_special
        )
        if n < 0:
            capacity = -n
            buf = (llama.llama_token * capacity)()
            n = llama.llama_tokenize(
                self.vocab, data, len(data), buf, capacity, add_special, parse_special
            )
        return list(buf[:n])

    def piece(self, token_id: int) -> bytes:
        """The bytes a token renders to (control tokens render to nothing)."""
        return self._piece_cache(token_id)

    def _piece_uncached(self, token_id: int) -> bytes:
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama.llama_token_to_piece(self.vocab, token_id, buf, size, 0, False)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def piece_text(self, token_id: int) -> str:
        """A token's text with special tokens rendered (e.g. the BOS token for chat templates)."""
        if token_id < 0:
            return ""
        buf = ctypes.create_string_buffer(256)
        n = llama.llama_token_to_piece(self.vocab, token_id, buf, 256, 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", errors="replace")

    def detokenize(self, token_ids: list[int]) -> str:
        return b"".join(self.piece(t) for t in token_ids).decode("utf-8", errors="replace")

    def grammar_parses(self, grammar: str) -> bool:
        """Whether llama.cpp accepts this GBNF grammar (checked before a request is queued)."""
        return self._grammar_cache(grammar)

    def _grammar_parses_uncached(self, grammar: str) -> bool:
        sampler = llama.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        if not sampler:
            return False
        llama.llama_sampler_free(sampler)
        return True

    def is_valid_token(self, token_id: int) -> bool:
        return 0 <= token_id < self.n_vocab
