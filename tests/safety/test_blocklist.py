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
