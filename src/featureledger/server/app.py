"""The HTTP feature server: a thin FastAPI layer over the `FeatureStore` facade.

Every endpoint calls the facade (`get_online_features`, `push`, the token checks);
this module only parses requests, maps featureledger errors to status codes and keeps
Prometheus metrics.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as prometheus_text
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from featureledger.errors import (
    AccessDeniedError,
    ConcurrentWriteError,
    DataError,
    DefinitionError,
    FeatureLedgerError,
    NotFoundError,
    TokenError,
)
from featureledger.registry import TokenRecord

if TYPE_CHECKING:
    from featureledger.store import FeatureStore

log = logging.getLogger("featureledger.server")

#: HTTP status of each featureledger error (the most specific class wins); others are 400
STATUS: list[tuple[type[FeatureLedgerError], int]] = [
    (TokenError, 401),
    (AccessDeniedError, 403),
    (NotFoundError, 404),
    (ConcurrentWriteError, 409),
    (DefinitionError, 409),
    (DataError, 422),
]

#: latency buckets (seconds): serving reads sit well under 10 ms, pushes may take seconds
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class FeaturesRequest(BaseModel):
    """Entity rows to read features for; each holds the view's join keys."""

    entities: list[dict[str, Any]] = Field(min_length=1)
    log: bool = False


class FeaturesResponse(BaseModel):
    view: str
    features: list[dict[str, Any]]


class PushRequest(BaseModel):
    """Rows for a feature group; timestamps as ISO 8601 strings with a zone offset."""

    rows: list[dict[str, Any]] = Field(min_length=1)
    to: Literal["online", "offline", "both"] = "online"


class PushResponse(BaseModel):
    group: str
    accepted: int


class FastJSON(JSONResponse):
    """orjson output; bytes become base64 text, NaN becomes null."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)  # Decimal and other exotic Arrow values


def status_of(exc: FeatureLedgerError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


class _Metrics:
    """Request latency per endpoint and errors per status, in a registry of the app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "featureledger_request_seconds",
            "Time to answer a request, by endpoint",
            ["method", "endpoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "featureledger_request_errors",
            "Requests answered with a 4xx or 5xx status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.served = Counter(
            "featureledger_entities_served",
            "Entity rows answered, by view",
            ["view"],
            registry=self.registry,
        )
        self.pushed = Gauge(
            "featureledger_last_push_timestamp_seconds",
            "Unix time of the last rows pushed into a group through this server",
            ["group", "to"],
            registry=self.registry,
        )


class _MetricsMiddleware:
    """Pure ASGI (no per-request task like BaseHTTPMiddleware): times each request."""

    def __init__(self, app: ASGIApp, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], endpoint).observe(
                time.perf_counter() - start
            )
            if status >= 400:
                self.metrics.errors.labels(endpoint, str(status)).inc()


def create_app(store: FeatureStore, *, insecure: bool = False, max_entities: int = 1000) -> FastAPI:
    """The feature server over ``store``.

    Requests need ``Authorization: Bearer <token>`` (see `FeatureStore.create_token`)
    unless ``insecure`` is set, which is meant for local use only. A features request
    may ask for at most ``max_entities`` entity rows (413 beyond).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.flush_token_audit()  # queued token-use entries reach the audit trail

    app = FastAPI(
        lifespan=lifespan,
        title="featureledger feature server",
        summary="Online features in, streaming rows out; the same values training saw.",
        default_response_class=FastJSON,
    )
    metrics = _Metrics()
    app.state.store = store
    app.state.metrics = metrics
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    # the scheme only parses the header (no threadpool hop); the token is checked in the
    # endpoint, on the worker thread that reads the features
    bearer = HTTPBearer(auto_error=False, description="A token from `featureledger token create`.")

    def token(credentials: HTTPAuthorizationCredentials | None) -> TokenRecord | None:
        if insecure:
            return None
        return store.check_token(credentials.credentials if credentials else None)

    @app.exception_handler(FeatureLedgerError)
    async def featureledger_error(_request: Request, exc: FeatureLedgerError) -> Response:
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        body = {"detail": str(exc), "error": type(exc).__name__, "retryable": exc.retryable}
        return FastJSON(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        body = {"detail": "invalid request: " + "; ".join(problems), "error": "RequestError"}
        return FastJSON(body, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        status, detail = exc.status_code, str(exc.detail)
        if status == 400 and "parsing the body" in detail:  # bytes that are not UTF-8 JSON
            status, detail = 422, "invalid request: the body is not valid UTF-8 JSON"
        return FastJSON({"detail": detail}, status_code=status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error answering a request")
        body = {"detail": f"internal error ({type(exc).__name__}); see the server log"}
        return FastJSON(body, status_code=500)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness: the server answers (no token needed)."""
        return {"status": "ok", "online_store": store.online_store().name}

    @app.get("/metrics", response_class=Response)
    def prometheus() -> Response:
        """Prometheus text format (no token needed)."""
        return Response(prometheus_text(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/features/{view}",
        response_model=FeaturesResponse,
        responses={401: {}, 403: {}, 404: {}, 413: {}, 422: {}},
    )
    async def features(
        view: str,
        body: FeaturesRequest,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
        log: bool = False,
    ) -> Any:
        """Latest features of ``view`` for each entity row, in request order."""
        # run on the event loop, not the threadpool: a read takes ~0.1 ms (SQLite) and the
        # hop to a worker thread cost more than that (p50 1.1 -> 0.9 ms, 590 -> 1,000 req/s
        # from 8 clients); pushes, which write files, stay on the threadpool
        record = token(credentials)
        if len(body.entities) > max_entities:
            return FastJSON(
                {
                    "detail": f"{len(body.entities)} entity rows asked, at most {max_entities} "
                    "per request; split the request",
                    "error": "TooManyEntities",
                },
                status_code=413,
            )
        if record is not None:
            store.authorize_read(record, view)
        try:
            got = store.get_online_features(view, body.entities, log=log or body.log)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # mixed types across rows
            raise DataError(
                f"online features of {view!r}: entity rows not readable: {exc}"
            ) from exc
        rows = got.to_pylist()
        metrics.served.labels(view).inc(len(rows))
        return FastJSON({"view": view, "features": rows})

    @app.post(
        "/push/{group}",
        response_model=PushResponse,
        responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}},
    )
    def push(
        group: str,
        body: PushRequest,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> Any:
        """Validate rows against the group's contract and write them (online by default)."""
        record = token(credentials)
        if record is not None:
            store.authorize_push(record, group)
        fg = store.get_feature_group(group)
        try:
            table = _typed_rows(body.rows, {f.name: f.arrow_type for f in fg.columns})
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"push into {group!r}: rows not readable: {exc}") from exc
        accepted = store.push(fg, table, to=body.to)
        metrics.pushed.labels(group, body.to).set_to_current_time()
        return FastJSON({"group": group, "accepted": accepted})

    return app


def _typed_rows(rows: list[dict[str, Any]], types: dict[str, pa.DataType]) -> pa.Table:
    """Rows from JSON as Arrow; ISO 8601 strings become the group's timestamps and dates."""
    table = pa.Table.from_pylist(rows)
    for i, name in enumerate(table.column_names):
        want = types.get(name)
        column = table.column(i)
        if want is None or not pa.types.is_string(column.type):
            continue
        if pa.types.is_timestamp(want) or pa.types.is_date(want):
            table = table.set_column(i, name, pc.cast(column, want))
    return table
