"""Refuse evaluation items that repeat training items.

    python -m ceruleum.safety.training.check_overlap

Two texts count as the same when their normalised words (case-folded, punctuation dropped) are
equal, or when they share at least 80% of their word 3-grams. Prints every pair found and exits 1
if there is any, so that the evaluation set stays held out.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ceruleum.safety.training.dataset import DATA_DIR, load

_WORD = re.compile(r"\w+")
SHINGLE = 3
THRESHOLD = 0.8


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def shingles(tokens: list[str]) -> set[tuple[str, ...]]:
    if len(tokens) < SHINGLE:
        return {tuple(tokens)}
    return {tuple(tokens[i : i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1)}


def overlaps(data_dir: Path) -> list[tuple[str, str, float]]:
    train = [(e.text, shingles(words(e.text))) for e in load("train", data_dir)]
    index: dict[tuple[str, ...], list[int]] = {}
    for position, (_, grams) in enumerate(train):
        for gram in grams:
            index.setdefault(gram, []).append(position)
    found = []
    for example in load("eval", data_dir):
        grams = shingles(words(example.text))
        candidates = {p for gram in grams for p in index.get(gram, [])}
        for position in candidates:
            text, other = train[position]
            similarity = len(grams & other) / max(1, min(len(grams), len(other)))
            if similarity >= THRESHOLD:
                found.append((example.text, text, round(similarity, 3)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    found = overlaps(args.data)
    for evaluation, training, similarity in found:
        print(f"{similarity}\n  eval:  {evaluation}\n  train: {training}")
    print(f"{len(found)} evaluation items repeat training items")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
