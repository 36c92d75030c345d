import json
from pathlib import Path

import pytest

from ceruleum.safety.training.take_up import halves, main, take_up


def line(text: str, labels: dict[str, object], role: str | None = None) -> str:
    item: dict[str, object] = {"text": text, "labels": labels}
    if role:
        item["role"] = role
    return json.dumps(item)


LINES = [
    line("a1", {"violence": "high"}),
    line("b1", {}),
    line("a2", {"violence": "high"}),
    line("a3", {"violence": "high"}),
    line("c1", {"violence": "high"}, role="document"),
    line("b2", {}),
    line("c2", {"violence": "high"}, role="document"),
]


def texts(rows: list[str]) -> list[str]:
    return [json.loads(row)["text"] for row in rows]


def test_each_label_group_alternates_between_the_halves() -> None:
    train, dev = halves(LINES)
    # A role is part of a group: the document lines alternate on their own.
    assert texts(train) == ["a1", "b1", "a3", "c1"]
    assert texts(dev) == ["a2", "b2", "c2"]


def test_take_up_moves_every_line_once_and_removes_the_candidate(tmp_path: Path) -> None:
    for split in ("candidates", "train", "dev"):
        (tmp_path / split).mkdir()
    source = tmp_path / "candidates" / "writers.jsonl"
    source.write_text("\n".join(LINES) + "\n\n", encoding="utf-8")
    assert take_up(source, tmp_path) == (4, 3)
    assert not source.exists()
    moved = [
        *(tmp_path / "train" / "writers.jsonl").read_text().splitlines(),
        *(tmp_path / "dev" / "writers.jsonl").read_text().splitlines(),
    ]
    assert sorted(moved) == sorted(LINES)


def test_take_up_refuses_to_overwrite_a_file_and_keeps_the_candidate(tmp_path: Path) -> None:
    for split in ("candidates", "train", "dev"):
        (tmp_path / split).mkdir()
    source = tmp_path / "candidates" / "writers.jsonl"
    source.write_text("\n".join(LINES), encoding="utf-8")
    (tmp_path / "dev" / "writers.jsonl").write_text("kept\n", encoding="utf-8")
    with pytest.raises(FileExistsError):
        take_up(source, tmp_path)
    assert source.exists()
    assert (tmp_path / "dev" / "writers.jsonl").read_text() == "kept\n"
    assert not (tmp_path / "train" / "writers.jsonl").exists()


def test_the_command_reports_a_missing_file_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path / "candidates" / "absent.jsonl"), "--data", str(tmp_path)])
    assert stopped.value.code == 2
    assert "absent.jsonl" in capsys.readouterr().err
