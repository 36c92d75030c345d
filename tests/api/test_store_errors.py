"""Store exceptions become the documented HTTP errors."""

from __future__ import annotations

import pytest

from ceruleum.api.errors import error_body, to_api_error
from ceruleum.store.errors import (
    ApiKeyNotFoundError,
    BlocklistExistsError,
    BlocklistInUseError,
    BlocklistItemNotFoundError,
    BlocklistNotFoundError,
    InvalidFieldError,
    LimitExceededError,
    ProjectExistsError,
    ProjectNameError,
    ProjectNotFoundError,
    StoreError,
)


@pytest.mark.parametrize(
    ("exc", "status", "param", "code"),
    [
        (ProjectNotFoundError("proj_x"), 404, None, "ProjectNotFound"),
        (ApiKeyNotFoundError("key_x"), 404, None, "ApiKeyNotFound"),
        (ProjectExistsError("alpha"), 409, "name", "conflict"),
        (ProjectNameError(), 400, "name", "invalid_value"),
        (InvalidFieldError("bad", param="role"), 400, "role", "invalid_value"),
        (BlocklistNotFoundError("words"), 404, None, "BlocklistNotFound"),
        (BlocklistItemNotFoundError("bli_x"), 404, None, "BlocklistItemNotFound"),
        (BlocklistExistsError("words"), 409, "name", "conflict"),
        (BlocklistInUseError("words", "chat"), 409, None, "conflict"),
        (LimitExceededError("too many", param="items"), 400, "items", "limit_exceeded"),
        (StoreError("internal detail"), 500, None, None),
    ],
)
def test_mapping(exc: Exception, status: int, param: str | None, code: str | None) -> None:
    error = to_api_error(exc)
    assert error.status_code == status
    body = error_body(error)["error"]
    assert (body["param"], body["code"]) == (param, code)
    assert "internal detail" not in body["message"]


def test_not_found_messages_name_only_the_id() -> None:
    assert to_api_error(ProjectNotFoundError("proj_x")).message == (
        "The project 'proj_x' does not exist."
    )
