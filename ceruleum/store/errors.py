"""Store exceptions. The API layer maps them to HTTP errors in ``api/errors.py``."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for control-plane store errors."""


class ProjectNotFoundError(StoreError):
    """No such project, or one the caller may not see: both read the same (404, never 403)."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        super().__init__(f"The project '{project_id}' does not exist.")


class ProjectExistsError(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"A project named '{name}' already exists.")


class ProjectNameError(StoreError, ValueError):
    def __init__(self) -> None:
        super().__init__(
            "A project name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit."
        )


class ApiKeyNotFoundError(StoreError):
    """No such key in this project (another project's key reads the same)."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"The API key '{key_id}' does not exist.")


class InvalidFieldError(StoreError):
    """A field of a project or key is invalid; ``param`` names it as the API spells it."""

    def __init__(self, message: str, *, param: str) -> None:
        self.message = message
        self.param = param
        super().__init__(message)


class BlocklistNotFoundError(StoreError):
    """No blocklist of this name in the project (another project's reads the same)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"The blocklist '{name}' does not exist.")


class BlocklistItemNotFoundError(StoreError):
    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(f"The blocklist item '{item_id}' does not exist.")


class BlocklistExistsError(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"A blocklist named '{name}' already exists in this project.")


class BlocklistInUseError(StoreError):
    """A blocklist that a deployment's content-filter policy still attaches."""

    def __init__(self, name: str, deployment: str) -> None:
        self.name, self.deployment = name, deployment
        super().__init__(
            f"The blocklist '{name}' is attached to the deployment '{deployment}'; detach it "
            "from that deployment's content filter first."
        )


class LimitExceededError(StoreError):
    """A change would pass a per-project or per-blocklist limit."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.message = message
        self.param = param
        super().__init__(message)
