"""What a request's `model` (or an Azure route's deployment) names: a deployment or a model."""

from __future__ import annotations

from ceruleum.api.protocol import SamplingFields
from ceruleum.deployments import Deployment
from ceruleum.deployments.lookup import DeploymentLookup
from ceruleum.engine.embeddings import EmbeddingModel
from ceruleum.engine.errors import EngineDeadError
from ceruleum.engine.pool import ChatModel, ModelPool
from ceruleum.engine.registry import UnknownModelError
from ceruleum.gateway.principal import Principal


async def find_deployment(
    deployments: DeploymentLookup, principal: Principal, name: str
) -> Deployment | None:
    """The caller's project's deployment of that name; other projects' do not exist for it.
    The platform admin belongs to no project, so it calls served models by their ids."""
    if principal.is_admin:
        return None
    return await deployments.get(project_id=principal.project_id, name=name)


async def resolve_chat(
    pool: ModelPool, deployments: DeploymentLookup, principal: Principal, name: str
) -> tuple[ChatModel, Deployment | None]:
    """A deployment name wins; a served model id works as its own implicit deployment."""
    deployment = await find_deployment(deployments, principal, name)
    if deployment is not None and deployment.model not in pool.chat_models:
        raise UnknownModelError(name)
    chat = pool.chat(deployment.model if deployment is not None else name)
    if not chat.engine.alive:
        # Checked before any reply starts, so that a stream gets a 503 rather than a 200.
        raise EngineDeadError("the engine is not running")
    return chat, deployment


async def resolve_embedding(
    pool: ModelPool, deployments: DeploymentLookup, principal: Principal, name: str
) -> tuple[EmbeddingModel, Deployment | None]:
    deployment = await find_deployment(deployments, principal, name)
    if deployment is None:
        return pool.embedding(name), None
    if deployment.model not in pool.embedding_models:
        raise UnknownModelError(name)
    return pool.embedding(deployment.model), deployment


def apply_sampling_defaults(body: SamplingFields, deployment: Deployment | None) -> None:
    if deployment is not None:
        body.temperature, body.top_p = deployment.apply_defaults(body.temperature, body.top_p)


def deployment_max_tokens(deployment: Deployment | None, requested: int | None) -> int | None:
    """The request's output budget after the deployment's default and limit."""
    return requested if deployment is None else deployment.effective_max_tokens(requested)
