"""Unit tests of StreamingText: incremental UTF-8 decoding and stop strings held back across
token pieces."""

from __future__ import annotations

import pytest

from ceruleum.engine.detokenizer import StreamingText


def push_all(st: StreamingText, pieces: list[bytes]) -> list[str]:
    """Push pieces like the engine does: nothing more once a stop string was hit."""
    outs = []
    for piece in pieces:
        if st.stopped:
            break
        outs.append(st.push(piece))
    return outs


# --- no stop strings ------------------------------------------------------------------------


def test_no_stops_releases_everything_immediately() -> None:
    st = StreamingText(())
    assert push_all(st, [b"Hello", b",", b" world", b"!"]) == ["Hello", ",", " world", "!"]
    assert st.text == "Hello, world!"
    assert st.flush() == ""
    assert not st.stopped


def test_empty_stop_strings_are_ignored() -> None:
    st = StreamingText(("",))
    assert st.push(b"abc") == "abc"
    assert not st.stopped


# --- stop strings -------------------------------------------------------------------------


def test_stop_inside_one_piece() -> None:
    st = StreamingText(("STOP",))
    assert st.push(b"Hello ") == "Hello "
    out = st.push(b"there STOP and more")
    assert out == "there "
    assert st.stopped
    assert st.text == "Hello there "
    assert st.flush() == ""
    assert st.text == "Hello there "


def test_stop_at_very_start_emits_nothing() -> None:
    st = StreamingText(("###",))
    assert st.push(b"###tail") == ""
    assert st.stopped
    assert st.text == ""


def test_stop_spanning_two_pieces() -> None:
    st = StreamingText(("END",))
    first = st.push(b"abc E")
    assert first == "abc "  # "E" could start "END": held back
    second = st.push(b"ND trailing")
    assert second == ""
    assert st.stopped
    assert st.text == "abc "
    assert "E" not in st.text


def test_stop_spanning_three_pieces() -> None:
    st = StreamingText(("<|end|>",))
    outs = push_all(st, [b"Answer: 42<|", b"en", b"d|> junk", b"never pushed"])
    assert outs == ["Answer: 42", "", ""]
    assert st.stopped
    assert st.text == "Answer: 42"
    assert st.flush() == ""


def test_stop_spanning_three_pieces_with_text_in_the_middle_piece() -> None:
    st = StreamingText(("\n\nUser:",))
    outs = push_all(st, [b"ok.\n", b"\nUs", b"er: next"])
    assert "".join(outs) == "ok."
    assert st.stopped
    assert st.text == "ok."


def test_partial_match_released_when_it_turns_out_not_to_be_a_stop() -> None:
    st = StreamingText(("STOP",))
    assert st.push(b"go ST") == "go "
    assert st.text == "go "
    # "STA" is not a prefix of "STOP": the held "ST" is released together with the new text.
    assert st.push(b"ART") == "START"
    assert not st.stopped
    assert st.text == "go START"


def test_partial_match_grows_then_breaks() -> None:
    st = StreamingText(("abcd",))
    assert st.push(b"xa") == "x"
    assert st.push(b"b") == ""
    assert st.push(b"c") == ""
    assert st.push(b"e") == "abce"
    assert not st.stopped
    assert st.text == "xabce"


def test_partial_match_restarts_inside_held_text() -> None:
    # "aab": held "a", then "aa" is not a prefix of "ab", but the trailing "a" still is.
    st = StreamingText(("ab",))
    assert st.push(b"a") == ""
    assert st.push(b"a") == "a"
    assert st.push(b"b") == ""
    assert st.stopped
    assert st.text == "a"


def test_multiple_stops_earliest_occurrence_wins() -> None:
    st = StreamingText(("world", "lo w"))
    assert st.push(b"hello world") == "hel"
    assert st.stopped
    assert st.text == "hel"


def test_multiple_stops_earliest_wins_across_pieces() -> None:
    st = StreamingText(("XYZ", "YZ!"))
    outs = push_all(st, [b"1 X", b"Y", b"Z!"])
    assert "".join(outs) == "1 "
    assert st.text == "1 "


def test_multiple_stops_shorter_one_completes_first() -> None:
    # "Observation" is still a possible match when "\n" completes: the newline stops first.
    st = StreamingText(("Observation:", "\n"))
    assert st.push(b"Thought: x Obs") == "Thought: x "
    assert st.push(b"\n") == "Obs"
    assert st.stopped
    assert st.text == "Thought: x Obs"


def test_flush_releases_held_back_text_at_the_end() -> None:
    st = StreamingText(("STOP",))
    assert st.push(b"the end S") == "the end "
    assert st.push(b"TO") == ""
    assert st.flush() == "STO"
    assert st.text == "the end STO"
    assert not st.stopped


def test_flush_after_stop_does_not_release_stop_or_tail() -> None:
    st = StreamingText(("STOP",))
    st.push(b"a STOP b")
    assert st.flush() == ""
    assert st.text == "a "


# --- UTF-8 ----------------------------------------------------------------------------------


def test_two_byte_char_split_across_pieces() -> None:
    data = "café".encode()
    st = StreamingText(())
    outs = push_all(st, [data[:-1], data[-1:]])  # "caf\xc3" then "\xa9"
    assert outs == ["caf", "é"]
    assert st.text == "café"
    assert "\ufffd" not in st.text


def test_emoji_split_into_single_byte_pieces() -> None:
    data = "hi 😀!".encode()
    st = StreamingText(())
    outs = push_all(st, [data[i : i + 1] for i in range(len(data))])
    assert "".join(outs) == "hi 😀!"
    assert all("\ufffd" not in o for o in outs)
    # No half character is ever released.
    assert outs[3:6] == ["", "", ""]
    assert outs[6] == "😀"


def test_emoji_split_like_the_real_tokenizer() -> None:
    # SmolLM2 tokenizes " 😀" as b" \xf0\x9f\x98" + b"\x80".
    st = StreamingText(())
    assert st.push(b" \xf0\x9f\x98") == " "
    assert st.push(b"\x80") == "😀"
    assert st.flush() == ""
    assert st.text == " 😀"


def test_multibyte_split_with_stop_strings() -> None:
    st = StreamingText(("é!",))
    data = "voilà é!".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]
    outs = push_all(st, pieces)
    assert "".join(outs) == "voilà "
    assert st.stopped
    assert "\ufffd" not in st.text


def test_multibyte_stop_string_split_across_byte_pieces() -> None:
    st = StreamingText(("🛑",))
    data = "go 🛑 no".encode()
    outs = push_all(st, [data[i : i + 1] for i in range(len(data))])
    assert "".join(outs) == "go "
    assert st.stopped
    assert st.text == "go "


def test_truncated_utf8_at_flush_becomes_replacement_char() -> None:
    st = StreamingText(())
    assert st.push(b"ab\xe2\x82") == "ab"
    assert st.flush() == "\ufffd"


@pytest.mark.parametrize("split", range(1, 8))
def test_any_split_of_a_stream_gives_the_same_result(split: int) -> None:
    data = "Hola, señor 🙂. FIN resto".encode()
    pieces = [data[i : i + split] for i in range(0, len(data), split)]
    st = StreamingText(("FIN",))
    released = "".join(push_all(st, pieces)) + st.flush()
    assert released == "Hola, señor 🙂. "
    assert st.stopped
