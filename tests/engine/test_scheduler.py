"""Unit tests of the continuous-batching Scheduler, driven the way EngineCore drives it."""

from __future__ import annotations

import random

from ceruleum.engine.sampling import SamplingParams
from ceruleum.engine.scheduler import Scheduler, SchedulerOutput
from ceruleum.engine.sequence import Sequence

SAMPLED_TOKEN = 7


def make_seq(request_id: str, n_prompt: int, max_tokens: int = 16) -> Sequence:
    return Sequence(request_id, list(range(100, 100 + n_prompt)), SamplingParams(max_tokens))


def run_step(out: SchedulerOutput) -> list[Sequence]:
    """What the engine does after executing a plan: the chunk's tokens are now cached, and a
    chunk that completed the pending tokens yields one sampled token. Returns those sequences."""
    sampled = []
    for chunk in out.chunks:
        completes = chunk.completes_pending
        chunk.seq.num_cached += chunk.num_tokens
        if completes:
            chunk.seq.output_tokens.append(SAMPLED_TOKEN)
            sampled.append(chunk.seq)
    return sampled


def chunk_sizes(out: SchedulerOutput) -> dict[str, int]:
    sizes = {c.seq.request_id: c.num_tokens for c in out.chunks}
    assert len(sizes) == len(out.chunks), "a sequence was scheduled twice in one step"
    return sizes


def assert_consistent(s: Scheduler, max_sequences: int) -> None:
    slots = [seq.slot for seq in s.running]
    assert None not in slots
    assert len(set(slots)) == len(slots), "two running sequences share a slot"
    assert all(0 <= slot < max_sequences for slot in slots)  # type: ignore[operator]
    assert all(seq.slot is None for seq in s.waiting)
    assert len(s.running) <= max_sequences


# --- continuous batching ---------------------------------------------------------------------


def test_new_sequence_joins_while_others_decode() -> None:
    s = Scheduler(max_sequences=4, max_batch_tokens=64, kv_capacity=1000)
    a, b = make_seq("a", 10), make_seq("b", 12)
    s.add(a)
    s.add(b)

    out = s.schedule()
    assert chunk_sizes(out) == {"a": 10, "b": 12}
    assert all(c.completes_pending for c in out.chunks)
    run_step(out)

    out = s.schedule()
    assert chunk_sizes(out) == {"a": 1, "b": 1}
    run_step(out)

    c = make_seq("c", 20)
    s.add(c)
    out = s.schedule()
    assert chunk_sizes(out) == {"a": 1, "b": 1, "c": 20}
    assert s.running == [a, b, c]
    assert not s.waiting
    sampled = run_step(out)
    assert sampled == [a, b, c]

    out = s.schedule()
    assert chunk_sizes(out) == {"a": 1, "b": 1, "c": 1}
    assert_consistent(s, 4)


def test_decode_chunks_are_scheduled_before_prefill_chunks() -> None:
    s = Scheduler(max_sequences=4, max_batch_tokens=8, kv_capacity=1000)
    a = make_seq("a", 3)
    s.add(a)
    run_step(s.schedule())
    b = make_seq("b", 30)
    s.add(b)
    out = s.schedule()
    assert [(c.seq.request_id, c.num_tokens) for c in out.chunks] == [("a", 1), ("b", 7)]


# --- chunked prefill -------------------------------------------------------------------------


def test_chunked_prefill_splits_long_prompt_and_keeps_decoding_others() -> None:
    budget = 16
    s = Scheduler(max_sequences=4, max_batch_tokens=budget, kv_capacity=1000)
    a = make_seq("a", 5, max_tokens=100)
    s.add(a)
    run_step(s.schedule())  # a prefilled, now decoding

    long = make_seq("long", 40)
    s.add(long)
    long_chunks = []
    a_outputs_before = len(a.output_tokens)
    steps = 0
    while not long.output_tokens:
        out = s.schedule()
        sizes = chunk_sizes(out)
        assert sizes["a"] == 1, "the decoding sequence must get its token every step"
        assert sum(sizes.values()) <= budget
        long_chunks.append(sizes["long"])
        # Only the last chunk asks for a sample.
        last = {c.seq.request_id: c.completes_pending for c in out.chunks}["long"]
        run_step(out)
        assert bool(long.output_tokens) == last
        steps += 1
        assert steps < 10

    assert long_chunks == [15, 15, 10]
    assert len(a.output_tokens) - a_outputs_before == steps
    assert long.num_cached == 40
    out = s.schedule()
    assert chunk_sizes(out) == {"a": 1, "long": 1}


def test_prompt_longer_than_budget_alone_is_split() -> None:
    s = Scheduler(max_sequences=2, max_batch_tokens=128, kv_capacity=4096)
    seq = make_seq("x", 600)
    s.add(seq)
    chunks = []
    while not seq.output_tokens:
        out = s.schedule()
        chunks.append(chunk_sizes(out)["x"])
        run_step(out)
    assert chunks == [128, 128, 128, 128, 88]


def test_waiting_sequence_is_admitted_while_a_long_prompt_prefills() -> None:
    """A short request that arrives while a long prompt is being prefilled should not wait for
    the whole prefill: the module docstring promises waiting sequences are admitted as soon as a
    slot and KV room are free, and that a long prompt never stalls the others."""
    s = Scheduler(max_sequences=4, max_batch_tokens=16, kv_capacity=1000)
    long = make_seq("long", 160)  # 10 steps of prefill
    s.add(long)
    run_step(s.schedule())

    short = make_seq("short", 4)
    s.add(short)
    steps = 0
    while not short.output_tokens:
        run_step(s.schedule())
        steps += 1
        assert steps < 20
    assert not long.output_tokens, (
        f"the short request got its first token only after the long prompt finished its "
        f"prefill ({steps} steps later): new requests are starved while a prefill uses the "
        "whole token budget"
    )


# --- slots -----------------------------------------------------------------------------------


def test_slots_are_limited_by_max_sequences() -> None:
    s = Scheduler(max_sequences=2, max_batch_tokens=256, kv_capacity=1000)
    seqs = [make_seq(f"s{i}", 5) for i in range(4)]
    for seq in seqs:
        s.add(seq)
    out = s.schedule()
    assert chunk_sizes(out) == {"s0": 5, "s1": 5}
    assert s.running == seqs[:2]
    assert list(s.waiting) == seqs[2:]
    assert {seqs[0].slot, seqs[1].slot} == {0, 1}
    assert seqs[2].slot is None and seqs[3].slot is None
    run_step(out)
    out = s.schedule()
    assert chunk_sizes(out) == {"s0": 1, "s1": 1}  # still no free slot
    assert_consistent(s, 2)


def test_remove_frees_the_slot_for_reuse() -> None:
    s = Scheduler(max_sequences=1, max_batch_tokens=64, kv_capacity=1000)
    a, b = make_seq("a", 5), make_seq("b", 6)
    s.add(a)
    s.add(b)
    run_step(s.schedule())
    assert a.slot == 0 and b.slot is None
    assert s.find("a") is a and s.find("b") is b

    assert s.remove(a) == 0
    assert a.slot is None
    assert s.find("a") is None
    assert s.running == []

    out = s.schedule()
    assert chunk_sizes(out) == {"b": 6}
    assert b.slot == 0


def test_remove_waiting_sequence_returns_no_slot() -> None:
    s = Scheduler(max_sequences=1, max_batch_tokens=64, kv_capacity=1000)
    a, b = make_seq("a", 5), make_seq("b", 5)
    s.add(a)
    s.add(b)
    s.schedule()
    assert s.remove(b) is None
    assert not s.waiting
    assert s.has_work()
    s.remove(a)
    assert not s.has_work()
    assert s.schedule().chunks == []


def test_slots_are_recycled_over_many_sequences() -> None:
    s = Scheduler(max_sequences=3, max_batch_tokens=64, kv_capacity=1000)
    for i in range(10):
        seq = make_seq(f"s{i}", 4)
        s.add(seq)
        run_step(s.schedule())
        assert seq.slot is not None
        assert_consistent(s, 3)
        if len(s.running) == 3:
            assert s.remove(s.running[0]) is not None


# --- KV budget and preemption ----------------------------------------------------------------


def test_sequence_not_admitted_when_kv_is_short() -> None:
    s = Scheduler(max_sequences=4, max_batch_tokens=256, kv_capacity=50)
    a, b, c = make_seq("a", 30), make_seq("b", 30), make_seq("c", 5)
    s.add(a)
    s.add(b)
    s.add(c)
    out = s.schedule()
    assert chunk_sizes(out) == {"a": 30}
    # b does not fit (30 > 50 - 30), and c is not let past it: admission is in order.
    assert list(s.waiting) == [b, c]
    run_step(out)
    assert s.kv_used == 30

    s.remove(a)
    out = s.schedule()
    assert chunk_sizes(out) == {"b": 30, "c": 5}


def test_kv_admission_counts_committed_not_just_cached_tokens() -> None:
    # a is admitted but not yet prefilled: its prompt is committed even though nothing is cached.
    s = Scheduler(max_sequences=4, max_batch_tokens=10, kv_capacity=50)
    a = make_seq("a", 40)
    s.add(a)
    s.schedule()
    assert a.num_cached == 0
    b = make_seq("b", 20)
    s.add(b)
    out = s.schedule()
    assert "b" not in chunk_sizes(out)
    assert list(s.waiting) == [b]


def test_overcommit_preempts_newest_running_sequence() -> None:
    s = Scheduler(max_sequences=4, max_batch_tokens=64, kv_capacity=24)
    a, b = make_seq("a", 10, max_tokens=50), make_seq("b", 10, max_tokens=50)
    s.add(a)
    s.add(b)
    run_step(s.schedule())  # prefill both: 11 + 11 committed
    c = make_seq("c", 2)
    s.add(c)  # fits exactly: 22 + 2 == 24
    out = s.schedule()
    assert chunk_sizes(out) == {"a": 1, "b": 1, "c": 2}
    run_step(out)  # a: 12, b: 12, c: 3 -> 27 committed > 24

    b_slot = b.slot
    c_slot = c.slot
    out = s.schedule()
    # Newest first: c (3 cells) is dropped, 24 <= 24 afterwards, so b keeps running.
    assert [(seq.request_id, slot) for seq, slot in out.preempted] == [("c", c_slot)]
    assert c.num_cached == 0 and c.slot is None
    assert s.waiting[0] is c
    assert chunk_sizes(out) == {"a": 1, "b": 1}
    assert b.slot == b_slot
    run_step(out)  # a: 13, b: 13 -> 26 > 24

    d = make_seq("d", 3)
    s.add(d)
    out = s.schedule()
    assert [(seq.request_id, slot) for seq, slot in out.preempted] == [("b", b_slot)]
    assert b.num_cached == 0
    assert b.slot is None
    assert len(b.output_tokens) == 3  # the generated tokens are kept and recomputed later
    assert list(s.waiting) == [b, c, d]  # back at the front, ahead of older waiters
    assert s.running == [a]
    assert chunk_sizes(out) == {"a": 1}
    assert_consistent(s, 4)

    # Once room frees up, b is re-admitted first and recomputes prompt + outputs in one go.
    run_step(out)
    s.remove(a)
    out = s.schedule()
    sizes = chunk_sizes(out)
    assert sizes["b"] == 13
    assert {ch.seq.request_id: ch.completes_pending for ch in out.chunks}["b"]
    assert s.running[0] is b


def test_single_running_sequence_is_never_preempted() -> None:
    s = Scheduler(max_sequences=2, max_batch_tokens=64, kv_capacity=8)
    a = make_seq("a", 7, max_tokens=10)
    s.add(a)
    run_step(s.schedule())
    run_step(s.schedule())  # 9 committed > 8
    out = s.schedule()
    assert out.preempted == []
    assert s.running == [a]
    assert s.preempt_newest() is None


# --- randomized invariants -------------------------------------------------------------------


def test_random_workload_invariants_and_completion() -> None:
    rng = random.Random(1234)
    max_sequences, budget, capacity = 4, 24, 120
    s = Scheduler(max_sequences=max_sequences, max_batch_tokens=budget, kv_capacity=capacity)
    pending = [make_seq(f"r{i}", rng.randint(1, 60), rng.randint(1, 30)) for i in range(40)]
    finished: list[Sequence] = []
    total = len(pending)
    preemptions = 0
    for _ in range(5000):
        if pending and rng.random() < 0.3:
            s.add(pending.pop(0))
        if not s.has_work():
            if not pending:
                break
            continue
        out = s.schedule()
        preemptions += len(out.preempted)
        sizes = chunk_sizes(out)
        assert sum(sizes.values()) <= budget
        assert all(n >= 1 for n in sizes.values())
        for chunk in out.chunks:
            assert chunk.seq in s.running
            assert chunk.num_tokens <= chunk.seq.num_pending
        assert_consistent(s, max_sequences)
        if len(s.running) > 1:
            assert sum(seq.num_tokens for seq in s.running) <= capacity
        for seq in run_step(out):
            if len(seq.output_tokens) >= seq.params.max_tokens:
                s.remove(seq)
                finished.append(seq)
    assert len(finished) == total, "some sequences never finished"
    assert not s.has_work()
    assert preemptions > 0, "the workload should exercise preemption"
    assert all(len(seq.output_tokens) == seq.params.max_tokens for seq in finished)
