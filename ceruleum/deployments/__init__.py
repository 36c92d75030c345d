"""Deployments: named bindings of a served model with its sampling defaults and limits."""

from ceruleum.deployments.errors import (
    DeploymentError,
    DeploymentExistsError,
    DeploymentLimitError,
    DeploymentNotFoundError,
    InvalidDeploymentError,
)
from ceruleum.deployments.model import (
    Deployment,
    DeploymentChanges,
    SamplingDefaults,
    parse_policy,
    validate_name,
)
from ceruleum.deployments.validation import check_model_served, check_name_free, offline_model_id

__all__ = [
    "Deployment",
    "DeploymentChanges",
    "DeploymentError",
    "DeploymentExistsError",
    "DeploymentLimitError",
    "DeploymentNotFoundError",
    "InvalidDeploymentError",
    "SamplingDefaults",
    "check_model_served",
    "check_name_free",
    "offline_model_id",
    "parse_policy",
    "validate_name",
]
