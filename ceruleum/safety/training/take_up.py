"""Take candidate files up: half of each into `train`, the other half into `dev`.

    python -m ceruleum.safety.training.take_up data/safety/candidates/session11_violence.jsonl ...

A candidate file is written by writers who never saw a model's failures, so it is independent
text; training on all of it would spend that independence. Each file is split by label group
(the same labels and role), alternately in file order, so that both halves carry the same mix
of categories, severities and roles: the first, third, fifth... of a group go to `train`, the
second, fourth... to `dev`. Each half keeps the file's name; the candidate file is removed.
Run `check_overlap` afterwards: texts of one writer may repeat each other across the halves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ceruleum.safety.training.dataset import DATA_DIR


def group_key(line: str) -> str:
    item = json.loads(line)
    return json.dumps([item.get("labels", {}), item.get("role", "user")], sort_keys=True)


def halves(lines: list[str]) -> tuple[list[str], list[str]]:
    """(training half, development half), each in file order."""
    seen: dict[str, int] = {}
    train: list[str] = []
    dev: list[str] = []
    for line in lines:
        key = group_key(line)
        (train if seen.get(key, 0) % 2 == 0 else dev).append(line)
        seen[key] = seen.get(key, 0) + 1
    return train, dev


def take_up(path: Path, data_dir: Path = DATA_DIR) -> tuple[int, int]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    train, dev = halves(lines)
    targets = {data_dir / "train" / path.name: train, data_dir / "dev" / path.name: dev}
    for target in targets:
        if target.exists():
            raise FileExistsError(f"{target} exists already")
    for target, rows in targets.items():
        target.write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")
    path.unlink()
    return len(train), len(dev)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    for path in args.files:
        try:
            train, dev = take_up(path, args.data)
        except (OSError, ValueError) as error:  # a missing file, a taken name, a bad line
            parser.error(str(error))
        print(f"{path.name}: {train} to train, {dev} to dev")


if __name__ == "__main__":
    main()
