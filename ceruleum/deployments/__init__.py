"""Deployments: named bindings of a served model with its sampling defaults and limits."""

from ceruleum.deployments.errors import (
    DeploymentError,
    DeploymentExistsError,
    DeploymentLimitError,
    DeploymentNotFoundError,
    DeploymentStoreCorruptError,
    InvalidDeploymentError,
)
from ceruleum.deployments.model import Deployment, SamplingDefaults, validate_name
from ceruleum.deployments.store import DeploymentChanges, DeploymentStore
from ceruleum.deployments.validation import check_model_served, check_name_free, offline_model_id

__all__ = [
    "Deployment",
    "DeploymentChanges",
    "DeploymentError",
    "DeploymentExistsError",
    "DeploymentLimitError",
    "DeploymentNotFoundError",
    "DeploymentStore",
    "DeploymentStoreCorruptError",
    "InvalidDeploymentError",
    "SamplingDefaults",
    "check_model_served",
    "check_name_free",
    "offline_model_id",
    "validate_name",
]
