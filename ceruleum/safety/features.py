"""The features every content classifier sees: a MiniLM sentence embedding (meaning) beside
hashed character and word n-grams (spelling: slurs, leetspeak, jailbreak boilerplate).

Training (`ceruleum.safety.training`) and serving use this one module, so both compute exactly
the same features.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import HashingVectorizer

HASH_FEATURES = 2**18
# A text is scored as its worst window: long windows keep the context a jailbreak needs (MiniLM
# reads at most 256 word pieces), short ones keep one harmful sentence from being drowned out
# by the harmless text around it.
LONG_WINDOW = (128, 32)  # words, overlap
SHORT_WINDOW = (32, 8)
_WORDS = re.compile(r"\S+")

_chars = HashingVectorizer(
    analyzer="char_wb",
    ngram_range=(3, 5),
    n_features=HASH_FEATURES,
    alternate_sign=False,
    norm="l2",
    lowercase=True,
)
_words = HashingVectorizer(
    analyzer="word",
    ngram_range=(1, 2),
    n_features=HASH_FEATURES,
    alternate_sign=False,
    norm="l2",
    lowercase=True,
    token_pattern=r"(?u)\b\w+\b",
)


def lexical_features(texts: Sequence[str]) -> sp.csr_matrix:
    """Hashed n-grams: characters in the first HASH_FEATURES columns, words in the next."""
    # scikit-learn checks its arguments and the counts' finiteness on every call, about a third
    # of a short text's time, on inputs made right here. The config is per thread.
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        return sp.hstack([_chars.transform(texts), _words.transform(texts)], format="csr")


def _spans(count: int, size: int, overlap: int) -> list[tuple[int, int]]:
    if count <= size:
        return [(0, count)]
    step = size - overlap
    return [(i, min(i + size, count)) for i in range(0, count - overlap, step)]


def windows(text: str) -> list[str]:
    """The windows a text is scored by: the text itself when it is short."""
    words = [m.span() for m in _WORDS.finditer(text)]
    if len(words) <= SHORT_WINDOW[0]:
        return [text]
    out = []
    for size, overlap in (LONG_WINDOW, SHORT_WINDOW):
        for first, last in _spans(len(words), size, overlap):
            out.append(text[words[first][0] : words[last - 1][1]])
    return out


def window_pieces(texts: Sequence[str]) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Every text's windows, in order, and the index of the text each one belongs to."""
    pieces: list[str] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        for window in windows(text):
            pieces.append(window)
            owner.append(index)
    return pieces, np.asarray(owner, dtype=np.int64)


def worst_per_text(
    scores: npt.NDArray[np.float32], owner: npt.NDArray[np.int64], count: int
) -> npt.NDArray[np.float32]:
    """(count, columns): each text's column-wise maximum over the rows of its windows."""
    out = np.zeros((count, scores.shape[1]), dtype=np.float32)
    if len(owner):
        np.maximum.at(out, owner, scores)
    return out


def worst_window(
    texts: Sequence[str],
    score: Callable[[list[str]], npt.NDArray[np.float32]],
    columns: int,
) -> npt.NDArray[np.float32]:
    """(texts, columns): each text's column-wise maximum of `score` over its windows."""
    pieces, owner = window_pieces(texts)
    if not pieces:
        return np.zeros((len(texts), columns), dtype=np.float32)
    return worst_per_text(score(pieces), owner, len(texts))
