"""GET /metrics: Prometheus text format, for the platform admin only.

Metrics name every served model and reveal load, so a project key may not read them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from ceruleum.gateway.auth import CurrentPrincipal
from ceruleum.gateway.errors import PermissionDeniedError
from ceruleum.gateway.metrics import Metrics

router = APIRouter(tags=["operations"])


@router.get("/metrics")
async def metrics(request: Request, principal: CurrentPrincipal) -> Response:
    if not principal.is_admin:
        raise PermissionDeniedError("Only the platform admin key may read /metrics.")
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
