"""Checks that bind a deployment to real models: by a server's model ids, or offline by name."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from ceruleum.deployments.errors import InvalidDeploymentError
from ceruleum.engine.registry import builtin_names, model_id_for_path


def check_name_free(name: str, model_ids: Collection[str]) -> None:
    """A deployment named like a model would make ``model`` in a request ambiguous."""
    if name in model_ids:
        raise InvalidDeploymentError(
            f"The deployment name '{name}' is also a model id; choose another name so that "
            "'model' in a request means one thing.",
            param="name",
        )


def check_model_served(model: str, served_ids: Collection[str]) -> None:
    if model not in served_ids:
        raise InvalidDeploymentError(
            f"The model '{model}' is not served here; use one of {sorted(served_ids)}.",
            param="model",
        )


def offline_model_id(model: str, *, force: bool = False) -> str:
    """The model id to bind when no server is at hand (the CLI).

    A built-in name stays as is; an existing .gguf file becomes the id the server gives it.
    ``force`` accepts any other id unchecked, for models the server finds elsewhere.
    """
    if model in builtin_names():
        return model
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return model_id_for_path(path)
    if force:
        return model
    raise InvalidDeploymentError(
        f"Unknown model '{model}': use one of {builtin_names()} or the path of a .gguf file "
        "(or --force to bind any model id).",
        param="model",
    )
