"""A bad CERULEUM_* setting stops a command with one line naming the setting, never a traceback
and never the value given (it may be a key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.conftest import assert_fails, cli


def test_a_bad_number_stops_serve_before_anything_loads(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERULEUM_TORCH_THREADS", "0")
    assert_fails(cli("serve", "--dev"), "CERULEUM_TORCH_THREADS")


def test_the_value_given_is_not_echoed(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERULEUM_PORT", "sk-not-a-port-0123456789")
    result = cli("projects", "list")
    assert_fails(result, "CERULEUM_PORT")
    assert "sk-not-a-port" not in result.output


def test_an_unparseable_list_stops_a_command(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERULEUM_CORS_ORIGINS", "not json")
    assert_fails(cli("deployments", "list", "--project", "proj_x"), "invalid settings")
