from __future__ import annotations

import pytest

from ceruleum.safety.profanity import contains_profanity


@pytest.mark.parametrize(
    "text",
    ["What the fuck is this", "sh1t happens", "FUUUUCK", "you son of a bitch", "wtf dude"],
)
def test_profanity_is_detected(text: str) -> None:
    assert contains_profanity(text)


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe United won",
        "a class assignment about assets",
        "hello there, how are you?",
        "the dickens novel",
        "",
    ],
)
def test_clean_text_is_not(text: str) -> None:
    assert not contains_profanity(text)
