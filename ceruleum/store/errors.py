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
