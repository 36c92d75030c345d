"""Executes one batched decode step on a llama.cpp context shared by many sequences."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import llama_cpp as llama
import numpy as np
import numpy.typing as npt

from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.sampling import SamplingParams


class KVCacheFullError(Exception):
    """llama.cpp found no room in the KV cache for this batch."""


class GrammarError(ValueError):
    """llama.cpp rejected a grammar."""


class DecodeError(Exception):
    """llama_decode failed for a reason other than a full KV cache."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    kv_cache_tokens: int
    max_sequences: int
    max_batch_tokens: int
    n_threads: int


@dataclass(slots=True)
class BatchEntry:
    """A run of tokens of one sequence to evaluate in this step."""

    slot: int  # llama.cpp seq_id
    tokens: list[int]
    start_pos: int
    want_logits: bool  # logits for the last token of the run


class LlamaRunner:
    """Owns the llama.cpp context (KV cache) and its batch buffer. Not thread-safe: one engine
    thread drives it."""

    def __init__(self, model: LlamaModel, config: RunnerConfig) -> None:
        self.model = model
        self.config = config
        params = llama.llama_context_default_params()
        params.n_ctx = config.kv_cache_tokens
        params.n_batch = config.max_batch_tokens
        params.n_ubatch = config.max_batch_tokens
        params.n_seq_max = config.max_sequences
        params.n_threads = config.n_threads
        params.n_threads_batch = config.n_threads
        params.kv_unified = True  # one pool shared by all sequences; the scheduler budgets it
        params.no_perf = True
        ctx = llama.llama_init_from_model(model.ptr, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.ctx = ctx
        self.memory = llama.llama_get_memory(ctx)
        self.kv_capacity: int = llama.llama_n_ctx(ctx)
        self._batch = llama.llama_batch_init(config.max_batch_tokens, 0, 1)

    def close(self) -> None:
        if self.ctx:
            llama.llama_batch_free(self._batch)
            llama.llama_free(self.ctx)
            self.ctx = None

    def decode(self, entries: list[BatchEntry]) -> dict[int, int]:
        """Evaluate the entries in one llama_decode; return slot -> logits row for entries that
        asked for logits."""
        batch = self._batch
        n = 0
        rows: dict[int, int] = {}
        for entry in entries:
            last = len(entry.tokens) - 1
            for offset, token in enumerate(entry.tokens):
                batch.token[n] = token
                batch.pos[n] = entry.start_pos + offset
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = entry.slot
                wants = entry.want_logits and offset == last
                batch.logits[n] = wants
                if wants:
                    rows[entry.slot] = n
                n += 1
        batch.n_tokens = n
        status = llama.llama_decode(self.ctx, batch)
        if status == 1:
            raise KVCacheFullError("no KV cache slot for the batch")
        if status != 0:
            raise DecodeError(f"llama_decode returned {status}")
        return rows

    def free_slot(self, slot: int) -> None:
        llama.llama_memory_seq_rm(self.memory, slot, -1, -1)

    def copy_kv(self, src_slot: int, dst_slot: int, length: int) -> None:
        """Share positions [0, length) of one sequence's cache with another (no data is copied
        in a unified cache)."""
        llama.llama_memory_seq_cp(self.memory, src_slot, dst_slot, 0, length)

    def logits(self, row: int) -> npt.NDArray[np.float32]:
        pointer = llama.llama_get_logits_ith(self.ctx, row)
        return np.ctypeslib.as_array(pointer, shape=(self.model.n_vocab,))

    def new_sampler(self, params: SamplingParams) -> Sampler:
        return Sampler(self, params)


class Sampler:
    """llama.cpp sampler chain for one sequence (keeps its own RNG and penalty history)."""

    def __init__(self, runner: LlamaRunner, params: SamplingParams) -> None:
        self._runner = runner
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        self._chain: ctypes.c_void_p | None = chain
        self._grammar: ConstrainedSampling | None = None
        add = llama.llama_sampler_chain_add
        n_vocab = runner.model.n_vocab
        if params.grammar is not None:
            self._grammar = ConstrainedSampling(runner, params.grammar)
        if params.logit_bias:
            biases = (llama.llama_logit_bias * len(params.logit_bias))()
            for i, (token, bias) in enumerate(params.logit_bias.items()):
                biases[i] = llama.llama_logit_bias(token, bias)
            add(chain, llama.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), biases))
        if params.presence_penalty or params.frequency_penalty:
            last_n = min(runner.kv_capacity, 1024)
            add(
                chain,
                llama.llama_sampler_init_penalties(
                    n_vocab, last_n, 1.0, params.frequency_penalty, params.presence_penalty
                ),
            )
        if params.greedy:
            add(chain, llama.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(chain, llama.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(chain, llama.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(chain, llama.llama_sampler_init_min_p(params.min_p, 1))
            add(chain, llama.llama_sampler_init_temp(params.temperature))
            # Any client seed maps to 0..2^32-2: 2^32-1 is llama.cpp's "pick a random seed".
            seed = (
                params.seed % llama.LLAMA_DEFAULT_SEED
                if params.seed is not None
                else llama.LLAMA_DEFAULT_SEED
            )
            add(chain, llama.llama_sampler_init_dist(seed))

    def sample(self, row: int) -> int:
        """Sample from the logits row and record the token in the chain's history."""
        if self._grammar is not None:
            return self._grammar.sample(self._chain, self._runner.logits(row))
        return int(llama.llama_sampler_sample(self._chain, self._runner.ctx, row))

    def close(self) -> None:
        if self._chain:
            llama.llama_sampler_free(self._chain)
            self._chain = None
        if self._grammar is not None:
            self._grammar.close()
            self._grammar = None


_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class ConstrainedSampling:
    """Grammar-constrained sampling that stays cheap: sample as if unconstrained, check only the
    chosen token against the grammar, and mask the whole vocabulary only when it is rejected
    (the same strategy as llama.cpp's common sampler)."""

    def __init__(self, runner: LlamaRunner, grammar: str) -> None:
        sampler = llama.llama_sampler_init_grammar(runner.model.vocab, grammar.encode(), b"root")
        if not sampler:
            raise GrammarError("llama.cpp could not parse the grammar")
        self._sampler: ctypes.c_void_p | None = sampler
        n_vocab = runner.model.n_vocab
        self._candidates = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._candidates["id"] = np.arange(n_vocab, dtype=np.int32)
        self._one = np.zeros(1, dtype=_TOKEN_DATA)

    def sample(self, chain: ctypes.c_void_p | None, logits: npt.NDArray[np.float32]) -> int:
        token = self._pick(chain, logits, masked=False)
        if not self._allows(token):
            token = self._pick(chain, logits, masked=True)
        llama.llama_sampler_accept(self._sampler, token)
        llama.llama_sampler_accept(chain, token)
        return token

    def _pick(
        self, chain: ctypes.c_void_p | None, logits: npt.NDArray[np.float32], *, masked: bool
    ) -> int:
        candidates = self._candidates
        candidates["id"] = np.arange(len(candidates), dtype=np.int32)
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = _token_array(candidates)
        if masked:
            llama.llama_sampler_apply(self._sampler, ctypes.byref(array))
        llama.llama_sampler_apply(chain, ctypes.byref(array))
        data = np.ctypeslib.as_array(array.data, shape=(array.size,))
        return int(data[array.selected]["id"])

    def _allows(self, token: int) -> bool:
        one = self._one
        one["id"] = token
        one["logit"] = 0.0
        array = _token_array(one)
        llama.llama_sampler_apply(self._sampler, ctypes.byref(array))
        return bool(np.isfinite(one["logit"][0]))

    def close(self) -> None:
        if self._sampler:
            llama.llama_sampler_free(self._sampler)
            self._sampler = None


def _token_array(buffer: npt.NDArray[np.void]) -> llama.llama_token_data_array:
    return llama.llama_token_data_array(
        data=buffer.ctypes.data_as(ctypes.POINTER(llama.llama_token_data)),
        size=len(buffer),
        selected=-1,
        sorted=False,
    )
