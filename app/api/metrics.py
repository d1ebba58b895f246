"""GET /metrics: the Prometheus scrape target, outside the versioned API."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from app.core.config import Settings
from app.core.errors import Forbidden, Unauthorized
from app.core.metrics import METRICS_PATH, render
from app.core.networks import NetworkSet, parse_address
from app.web.deps import SettingsDep
from app.web.responses import problems

router = APIRouter(tags=["operations"])

_EXPOSITION = {
    "description": "Prometheus text format, or OpenMetrics when the scraper asks for it.",
    "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/openmetrics-text": {"schema": {"type": "string"}},
    },
}


@router.get(
    METRICS_PATH,
    response_class=Response,
    responses={200: _EXPOSITION, **problems(401, 403)},
)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Every worker's metrics. In production, only with `METRICS_TOKEN` or from
    `METRICS_ALLOWED_NETWORKS`; elsewhere open unless a token is set."""
    # A plain `def`: reading the worker files is blocking I/O, so FastAPI runs
    # it in its thread pool.
    _admit(request, settings)
    body, content_type = render(settings.prometheus_multiproc_dir, request.headers.get("accept"))
    return Response(body, media_type=content_type)


def _admit(request: Request, settings: Settings) -> None:
    token = settings.metrics_token
    if token is None and not settings.is_production:
        return
    if token is not None and _presented_token_matches(request, token.get_secret_value()):
        return
    if _from_allowed_network(request, settings):
        return
    if token is not None:
        raise Unauthorized("Send the metrics token as `Authorization: Bearer <token>`.")
    raise Forbidden("Metrics are served to the allowed networks only.")


def _presented_token_matches(request: Request, expected: str) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def _from_allowed_network(request: Request, settings: Settings) -> bool:
    if not settings.metrics_allowed_networks or request.client is None:
        return False
    # The real client: the edge middleware has already resolved trusted proxies.
    address = parse_address(request.client.host)
    return address is not None and address in NetworkSet(settings.metrics_allowed_networks)
