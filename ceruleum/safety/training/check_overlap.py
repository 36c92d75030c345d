"""Refuse texts that repeat across the splits: train (and its candidates), dev and eval.

    python -m ceruleum.safety.training.check_overlap

Training texts fit the models, development texts choose the operating point, evaluation texts
only measure; a text in two of them would let one step see what another is judged on. Two texts
count as the same when their normalised words (case-folded, punctuation dropped) are equal, or
when they share at least 80% of their word 3-grams. Prints every pair found and exits 1 if there
is any.
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


# Each later split is checked against every earlier one. `candidates` holds training texts not
# yet trained on (a later plan moves them into `train`), so they are held to the same rule.
SPLITS = ("train", "candidates", "dev", "eval")


def repeats(earlier: list[str], later: list[str]) -> list[tuple[str, str, float]]:
    """(later text, earlier text, similarity) for every later text that repeats an earlier one."""
    known = [(text, shingles(words(text))) for text in earlier]
    index: dict[tuple[str, ...], list[int]] = {}
    for position, (_, grams) in enumerate(known):
        for gram in grams:
            index.setdefault(gram, []).append(position)
    found = []
    for text in later:
        grams = shingles(words(text))
        candidates = {p for gram in grams for p in index.get(gram, [])}
        for position in sorted(candidates):
            other_text, other = known[position]
            similarity = len(grams & other) / max(1, min(len(grams), len(other)))
            if similarity >= THRESHOLD:
                found.append((text, other_text, round(similarity, 3)))
    return found


def overlaps(data_dir: Path) -> list[tuple[str, str, str, str, float]]:
    """(later split, earlier split, later text, earlier text, similarity) across every pair of
    splits."""
    texts = {split: [e.text for e in load(split, data_dir)] for split in SPLITS}
    found = []
    for i, later in enumerate(SPLITS):
        for earlier in SPLITS[:i]:
            found += [(later, earlier, *r) for r in repeats(texts[earlier], texts[later])]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    found = overlaps(args.data)
    for later_split, earlier_split, later, earlier, similarity in found:
        print(f"{similarity}\n  {later_split}: {later}\n  {earlier_split}: {earlier}")
    print(f"{len(found)} texts repeat a text of an earlier split ({', '.join(SPLITS)})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
