from __future__ import annotations

import time

import pytest

from ceruleum.safety.blocklist import (
    BlocklistItem,
    BlocklistPatternError,
    CompiledBlocklist,
    check_pattern,
)


def compiled(*items: tuple[str, bool]) -> CompiledBlocklist:
    return CompiledBlocklist(
        "bl_1", "list", [BlocklistItem(f"bli_{i}", p, r) for i, (p, r) in enumerate(items)]
    )


def test_terms_match_whole_words_case_insensitively() -> None:
    blocklist = compiled(("Acme", False), ("project falcon", False))
    assert blocklist.matches("we compared ACME to others")
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "Acme")  # NFKC folds these
    assert blocklist.matches(f"{full_width} is a rival")
    assert blocklist.matches("About Project  Falcon".replace("  ", " "))
    assert not blocklist.matches("acmeville is a town")
    assert not blocklist.matches("project falconry")
    assert not blocklist.matches("nothing here")


def test_regular_expressions() -> None:
    blocklist = compiled((r"\b\d{3}-\d{2}-\d{4}\b", True))
    assert blocklist.matches("my ssn is 123-45-6789")
    assert not blocklist.matches("call 123-456-7890")


def test_a_pathological_pattern_fails_closed_quickly() -> None:
    blocklist = compiled((r"(?:a|aa)+b", True))
    started = time.perf_counter()
    assert blocklist.matches("a" * 60)  # catastrophic backtracking: timed out -> a match
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("pattern", "is_regex"),
    [("", False), ("   ", True), ("x" * 129, False), ("x" * 1001, True), ("(unclosed", True)],
)
def test_bad_patterns_are_refused(pattern: str, is_regex: bool) -> None:
    with pytest.raises(BlocklistPatternError):
        check_pattern(pattern, is_regex=is_regex)


def test_good_patterns_pass() -> None:
    check_pattern("competitor", is_regex=False)
    check_pattern(r"secret-\w+", is_regex=True)


def test_past_the_deadline_patterns_count_as_a_match_and_terms_still_decide() -> None:
    patterns = compiled((r"\bnever-here\b", True))
    assert not patterns.matches("an ordinary text", deadline=time.monotonic() + 10)
    assert patterns.matches("an ordinary text", deadline=time.monotonic() - 1)
    terms = compiled(("acme", False))
    assert not terms.matches("an ordinary text", deadline=time.monotonic() - 1)
    assert terms.matches("acme inside", deadline=time.monotonic() - 1)


def test_many_patterns_each_under_their_own_limit_share_one_budget_per_item() -> None:
    from ceruleum.safety.analyzers import BlocklistAnalyzer, Context, Segment
    from ceruleum.safety.blocklist import REGEX_BUDGET_S

    # Each backtracks for tens of milliseconds on the text below, under REGEX_TIMEOUT_S; two
    # hundred of them would hold the thread for seconds.
    slow = CompiledBlocklist(
        "bl_slow",
        "slow",
        [BlocklistItem(f"bli_{i}", rf"(\w+\s?)+\d{{{i + 1}}}", True) for i in range(200)],
    )
    ordinary = compiled(("acme", False))
    text = "a" * 150
    started = time.perf_counter()
    found = BlocklistAnalyzer().analyze(
        [[Segment(text)], [Segment("short")]], Context(blocklists=[slow, ordinary])
    )
    elapsed = time.perf_counter() - started
    # Undecided in time: the slow list fails closed; the list of terms still decides.
    assert found[0].blocklist_hits == {"slow": True, "list": False}
    assert found[1].blocklist_hits == {"slow": False, "list": False}  # decided quickly
    assert elapsed < 2 * REGEX_BUDGET_S + 1
