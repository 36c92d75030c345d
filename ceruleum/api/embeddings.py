"""POST /v1/embeddings."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field, StrictInt, StrictStr

from ceruleum.api.body import parse_as, read_json_object
from ceruleum.api.deps import DeploymentLookupDep, PoolDep, SettingsDep
from ceruleum.api.errors import InvalidRequestError
from ceruleum.api.gating import deployment_quota, gated, new_gate
from ceruleum.api.protocol import WireModel
from ceruleum.api.targets import resolve_embedding
from ceruleum.deployments.lookup import DeploymentLookup
from ceruleum.engine.pool import ModelPool
from ceruleum.gateway.gate import InferenceGate
from ceruleum.settings import Settings

router = APIRouter()


class EmbeddingRequest(WireModel):
    model: StrictStr
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None
    user: StrictStr | None = None


@router.post("/embeddings", tags=["inference"])
async def embeddings(
    request: Request, pool: PoolDep, deployments: DeploymentLookupDep, settings: SettingsDep
) -> Response:
    gate = new_gate(request, route="embeddings", operation="Embeddings_Create")

    async def handle() -> Response:
        data = await read_json_object(request, settings.max_body_bytes)
        body = parse_as(EmbeddingRequest, data)
        return await create_embeddings(body, pool, deployments, settings, gate)

    return await gated(request, gate, handle())


async def create_embeddings(
    body: EmbeddingRequest,
    pool: ModelPool,
    deployments: DeploymentLookup,
    settings: Settings,
    gate: InferenceGate,
) -> JSONResponse:
    embedder, deployment = await resolve_embedding(pool, deployments, gate.principal, body.model)
    gate.authorize(body.model)
    texts = _texts(body.input, settings.max_embedding_inputs)
    tokens_per_minute, requests_per_minute = deployment_quota(deployment, settings)
    await gate.admit(
        model=embedder.spec.id,
        # A generous estimate (about 3 characters a token); settled to the real count after.
        estimated_tokens=sum(len(t) for t in texts) // 3 + len(texts),
        tokens_per_minute=tokens_per_minute,
        requests_per_minute=requests_per_minute,
    )
    result = await embedder.embed(texts)
    gate.count(prompt_tokens=result.prompt_tokens, completion_tokens=0)
    vectors = result.vectors
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        raise InvalidRequestError(
            f"This model produces {vectors.shape[1]}-dimensional embeddings and cannot change "
            "their size; omit 'dimensions'.",
            param="dimensions",
        )
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if body.encoding_format == "base64"
                else vector.tolist()
            ),
        }
        for i, vector in enumerate(vectors)
    ]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": embedder.spec.id,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }
    )


def _texts(raw: str | list[str] | list[int] | list[list[int]], limit: int) -> list[str]:
    if isinstance(raw, str):
        items: list[object] = [raw]
    else:
        items = list(raw)
    if not items:
        raise InvalidRequestError("'input' must not be empty.", param="input")
    if len(items) > limit:
        raise InvalidRequestError(f"'input' may hold at most {limit} items.", param="input")
    if not all(isinstance(item, str) for item in items):
        raise InvalidRequestError(
            "Token-array input is not supported by this embedding model (its tokenizer differs "
            "from OpenAI's); send text.",
            param="input",
            code="unsupported_value",
        )
    texts = [str(item) for item in items]
    for index, text in enumerate(texts):
        if not text:
            raise InvalidRequestError(f"input[{index}] is an empty string.", param="input")
    return texts
