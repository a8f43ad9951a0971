"""The HTTP feature server: a thin FastAPI layer over the `FeatureStore` facade.

Every endpoint calls the facade (`get_online_features`, `push`, the token checks);
this module only parses requests, maps featureledger errors to status codes and keeps
Prometheus metrics.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as prometheus_text
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
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
    OnlineStoreUnavailable,
    TokenError,
)
from featureledger.registry import TokenRecord
from featureledger.server.predict import PredictRequest, add_predict_route

if TYPE_CHECKING:
    from featureledger.store import FeatureStore

log = logging.getLogger("featureledger.server")

#: HTTP status of each featureledger error (the most specific class wins); others are 400
STATUS: list[tuple[type[FeatureLedgerError], int]] = [
    (TokenError, 401),
    (OnlineStoreUnavailable, 503),
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


_Model = TypeVar("_Model", bound=BaseModel)


class FeaturesResponse(BaseModel):
    view: str
    features: list[dict[str, Any]]
    #: present only when the online store was down and ``online.fallback: offline`` served
    #: the last materialized values from the offline store
    source: Literal["offline-fallback"] | None = None


class PushRequest(BaseModel):
    """Rows for a feature group; timestamps as ISO 8601 strings with a zone offset."""

    rows: list[dict[str, Any]] = Field(min_length=1)
    to: Literal["online", "offline", "both"] = "online"


class MaterializeRequest(BaseModel):
    """Which groups or views to materialize (none: every online group)."""

    names: list[str] = Field(default_factory=list)
    full: bool = False


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


class _TooLarge(BaseException):
    """Not an Exception: FastAPI turns any Exception raised while it reads the body into a
    400, and this must reach `_BodyLimitMiddleware` to become a 413."""


class _BodyLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with a 413 before they are parsed, so a
    huge or endless body cannot exhaust the server's memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._refuse(send, declared)
                    return
        seen = 0
        started = False

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except _TooLarge:
            if not started:
                await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        body = orjson.dumps(
            {
                "detail": f"request body of {size:,}+ bytes is over the server's limit of "
                f"{self.limit:,} bytes; send fewer rows per request",
                "error": "BodyTooLarge",
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _FreshnessCollector:
    """Freshness gauges of each group's online copy, read from the registry at scrape time
    (at most every `SECONDS`, so frequent scrapes do not query the registry each time)."""

    SECONDS = 10.0

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self._cached: tuple[float, list[dict[str, Any]]] = (0.0, [])

    def describe(self) -> list[Any]:
        return []  # computed at scrape time only

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        clock = time.monotonic()
        if self._cached[0] <= clock:
            try:
                rows = self.store.online_freshness()
            except Exception:  # a scrape must not fail because the registry is busy
                log.exception("freshness metrics could not be read")
                rows = self._cached[1]
            self._cached = (clock + self.SECONDS, rows)
        rows = self._cached[1]
        now = time.time()
        when = GaugeMetricFamily(
            "featureledger_materialized_timestamp_seconds",
            "Unix time of the group's last materialization into the online store",
            labels=["group"],
        )
        behind = GaugeMetricFamily(
            "featureledger_online_versions_behind",
            "Data versions committed offline since the one the online store serves",
            labels=["group"],
        )
        age = GaugeMetricFamily(
            "featureledger_feature_age_seconds",
            "Seconds since the newest event time of the data version served online",
            labels=["group"],
        )
        for r in rows:
            label = [f"{r['group']}@v{r['major']}"]
            when.add_metric(label, r["materialized_at"].timestamp())
            behind.add_metric(label, float(r["versions_behind"]))
            if r["newest_event_time"] is not None:
                age.add_metric(label, now - r["newest_event_time"].timestamp())
        yield from (when, behind, age)


def error_response(exc: FeatureLedgerError) -> FastJSON:
    """The response to a featureledger error: status by class, the message as detail."""
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, OnlineStoreUnavailable):  # clients and proxies may retry after this
        headers = {"Retry-After": str(exc.retry_after)}
    body = {"detail": str(exc), "error": type(exc).__name__, "retryable": exc.retryable}
    return FastJSON(body, status_code=status, headers=headers)


_FEATURES = "/features/"


class _FeaturesFastPath:
    """Answers well-formed ``POST /features/{view}`` requests without FastAPI's routing,
    dependency solving and pydantic validation (about 100 of a request's ~150 µs in
    process): the body is parsed with orjson and handed to the same `read_features` the
    FastAPI endpoint calls. Anything else -- a query string, a body of another shape,
    JSON that does not parse -- goes to FastAPI unchanged (with the body replayed), so
    its validation messages, the OpenAPI spec and every other route stay as they are.
    """

    def __init__(self, app: ASGIApp, read: Callable[..., Response], routes: Any) -> None:
        self.app = app
        self.read = read
        self.routes = routes
        self.route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(_FEATURES)
            or scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        view = path[len(_FEATURES) :]
        request = _plain_features_request(body)
        if request is None or not view or "/" in view:
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        entities, log_rows = request
        if self.route is None:
            self.route = next(r for r in self.routes.routes if r.path == "/features/{view}")
        scope["route"] = self.route  # the metrics label it as FastAPI's routing would
        secret = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and credentials:
                    secret = credentials.strip()
                break
        try:
            response = self.read(view, entities, secret, log=log_rows)
        except FeatureLedgerError as exc:
            response = error_response(exc)
        except Exception as exc:
            log.exception("unexpected error answering a request")
            response = FastJSON(
                {"detail": f"internal error ({type(exc).__name__}); see the server log"},
                status_code=500,
            )
        await response(scope, receive, send)


def _plain_features_request(body: bytes) -> tuple[list[dict[str, Any]], bool] | None:
    """``(entities, log)`` of a body `FeaturesRequest` accepts as it is, else None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or not data.keys() <= {"entities", "log"}:
        return None
    entities, log_rows = data.get("entities"), data.get("log", False)
    if type(entities) is not list or not entities or type(log_rows) is not bool:
        return None
    if not all(type(e) is dict for e in entities):
        return None
    return entities, log_rows


def create_app(
    store: FeatureStore,
    *,
    insecure: bool = False,
    max_entities: int = 1000,
    max_body_bytes: int = 16 << 20,
) -> FastAPI:
    """The feature server over ``store``.

    Requests need ``Authorization: Bearer <token>`` (see `FeatureStore.create_token`)
    unless ``insecure`` is set, which is meant for local use only (the admin endpoints
    are then closed). A features request may ask for at most ``max_entities`` entity rows
    and no request body may exceed ``max_body_bytes`` (413 beyond either).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.flush_token_audit()  # queued token-use entries reach the audit trail
        store.flush_predictions()  # and served predictions the prediction log

    app = FastAPI(
        lifespan=lifespan,
        title="featureledger feature server",
        summary="Online features in, streaming rows out; the same values training saw.",
        default_response_class=FastJSON,
    )
    metrics = _Metrics()
    app.state.store = store
    _mount_ui(app, store)
    app.state.metrics = metrics
    metrics.registry.register(_FreshnessCollector(store))
    # the last added runs first: metrics, then the body limit, then the fast path
    app.add_middleware(
        _FeaturesFastPath,
        read=lambda *args, **kwargs: read_features(*args, **kwargs),
        routes=app.router,
    )
    app.add_middleware(_BodyLimitMiddleware, limit=max_body_bytes)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)  # outermost: times the 413s too

    # the scheme only parses the header (no threadpool hop); the token is checked in the
    # endpoint, on the worker thread that reads the features
    bearer = HTTPBearer(auto_error=False, description="A token from `featureledger token create`.")

    def token(secret: str | None) -> TokenRecord | None:
        """The caller's token record; None when the server runs without tokens."""
        return None if insecure else store.check_token(secret)

    @app.exception_handler(FeatureLedgerError)
    async def featureledger_error(_request: Request, exc: FeatureLedgerError) -> Response:
        return error_response(exc)

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
    async def health() -> dict[str, Any]:  # on the event loop: no thread-pool hop
        """Liveness: the server answers (no token needed); says if the online store is down."""
        try:
            return {"status": "ok", "online_store": store.online_store().name}
        except OnlineStoreUnavailable as exc:  # the server lives; reads get 503 or fall back
            return {"status": "ok", "online_store": "unavailable", "detail": str(exc)}

    @app.get("/metrics", response_class=Response)
    def prometheus() -> Response:
        """Prometheus text format (no token needed)."""
        return Response(prometheus_text(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/features/{view}",
        response_model=FeaturesResponse,
        responses={401: {}, 403: {}, 404: {}, 413: {}, 422: {}, 503: {}},
        openapi_extra=_body_doc(FeaturesRequest),
    )
    async def features(
        view: str,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
        log: bool = False,
    ) -> Any:
        """Latest features of ``view`` for each entity row, in request order."""
        record = authorize_read(view, _secret(credentials))  # before the body is looked at
        body = parse_body(await request.body(), FeaturesRequest)
        return read_authorized(view, body.entities, record, log=log or body.log)

    def authorize_read(view: str, secret: str | None) -> TokenRecord | None:
        record = token(secret)
        if record is not None:
            store.authorize_read(record, view)
        return record

    def read_features(
        view: str, entities: list[dict[str, Any]], secret: str | None, *, log: bool
    ) -> Response:
        # runs on the event loop, not the threadpool: a read takes well under 0.1 ms and the
        # hop to a worker thread cost more than that (p50 1.1 -> 0.9 ms, 590 -> 1,000 req/s
        # from 8 clients); pushes, which write files, stay on the threadpool
        return read_authorized(view, entities, authorize_read(view, secret), log=log)

    def read_authorized(
        view: str, entities: list[dict[str, Any]], record: TokenRecord | None, *, log: bool
    ) -> Response:
        del record  # authorized by the caller; kept in the signature so no path skips it
        if len(entities) > max_entities:
            return FastJSON(
                {
                    "detail": f"{len(entities)} entity rows asked, at most {max_entities} "
                    "per request; split the request",
                    "error": "TooManyEntities",
                },
                status_code=413,
            )
        try:
            got = store.get_online_features(view, entities, log=log)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # mixed types across rows
            raise DataError(
                f"online features of {view!r}: entity rows not readable: {exc}"
            ) from exc
        rows = got.to_pylist()
        metrics.served.labels(view).inc(len(rows))
        answer: dict[str, Any] = {"view": view, "features": rows}
        if got.source != "online":  # the online store was down: say where values came from
            answer["source"] = got.source
        return FastJSON(answer)

    add_predict_route(
        app,
        store,
        bearer=bearer,
        token=token,
        parse_body=parse_body,
        body_doc=_body_doc,
        response=FastJSON,
        max_entities=max_entities,
    )

    from featureledger.server.llm import SearchRequest, add_llm_routes

    add_llm_routes(
        app,
        store,
        bearer=bearer,
        token=token,
        parse=parse_body,
        doc=_body_doc(SearchRequest),
    )

    @app.post(
        "/push/{group}",
        response_model=PushResponse,
        responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}, 503: {}},
        openapi_extra=_body_doc(PushRequest),
    )
    async def push(
        group: str,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> Any:
        """Validate rows against the group's contract and write them (online by default)."""
        record = token(_secret(credentials))
        if record is not None:  # role and group first: a reader never gets a body error
            store.authorize_push(record, group)
        body = parse_body(await request.body(), PushRequest)
        if record is not None:  # then the columns the rows carry
            store.authorize_push_columns(record, group, {k for row in body.rows for k in row})
        return await run_in_threadpool(write_rows, group, body)

    def write_rows(group: str, body: PushRequest) -> Response:
        fg = store.get_feature_group(group)
        try:
            table = _typed_rows(body.rows, {f.name: f.arrow_type for f in fg.columns})
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"push into {group!r}: rows not readable: {exc}") from exc
        accepted = store.push(fg, table, to=body.to)
        metrics.pushed.labels(group, body.to).set_to_current_time()
        return FastJSON({"group": group, "accepted": accepted})

    def admin(credentials: HTTPAuthorizationCredentials | None, action: str) -> TokenRecord:
        if insecure:
            raise AccessDeniedError(
                f"{action} needs an admin token; the server runs with --insecure, which "
                "serves features without tokens but keeps the admin endpoints closed"
            )
        record = store.check_token(_secret(credentials))
        store.authorize_admin(record, action)
        return record

    @app.post(
        "/admin/materialize",
        responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}, 503: {}},
        openapi_extra=_body_doc(MaterializeRequest, required=False),
    )
    async def materialize(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> Any:
        """Materialize groups or views (default: every online group); admin tokens only."""
        admin(credentials, "materialize")
        raw = await request.body()
        body = parse_body(raw, MaterializeRequest) if raw.strip() else MaterializeRequest()
        return await run_in_threadpool(run_materialize, body)

    def run_materialize(body: MaterializeRequest) -> Response:
        done = store.materialize(body.names or None, incremental=not body.full)
        return FastJSON(
            {
                "materialized": [
                    {
                        "group": m.group,
                        "version": m.version,
                        "mode": m.mode,
                        "rows": m.rows,
                        "changed": m.changed,
                    }
                    for m in done
                ]
            }
        )

    @app.get("/admin/tokens", responses={401: {}, 403: {}})
    def list_tokens(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Any:
        """Every API token (never a secret nor its hash); admin tokens only."""
        admin(credentials, "token listing")
        return FastJSON(
            {
                "tokens": [
                    {
                        "id": t.id,
                        "role": t.role,
                        "views": list(t.views),
                        "purpose": t.purpose,
                        "created_at": t.created_at,
                        "revoked_at": t.revoked_at,
                    }
                    for t in store.tokens()
                ]
            }
        )

    @app.post("/admin/tokens/{token_id}/revoke", responses={401: {}, 403: {}, 404: {}})
    def revoke_token(
        token_id: str, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
    ) -> Any:
        """Revoke a token at once (this server's token cache included); admin tokens only."""
        record = admin(credentials, "token revocation")
        revoked = store.revoke_token(token_id, by=f"token:{record.id}")
        return FastJSON({"id": revoked.id, "revoked_at": revoked.revoked_at})

    def openapi() -> dict[str, Any]:
        """FastAPI's spec plus the request models the endpoints parse themselves."""
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (FeaturesRequest, PushRequest, MaterializeRequest, PredictRequest):
                schemas[model.__name__] = model.model_json_schema(ref_template=_REF)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_REF = "#/components/schemas/{model}"

#: how deep arrays and objects may nest in a request body (orjson's own limit)
JSON_DEPTH = 1024


def _body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that parses ``model`` itself (after the
    token check, so validation never answers before authorization)."""
    ref = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": ref}}}}


def parse_body(raw: bytes, model: type[_Model]) -> _Model:
    """``raw`` as ``model``, whatever the Content-Type header says (curl's ``-d`` sends a
    form type); `RequestValidationError` (422) naming what is wrong otherwise."""

    def refuse(msg: str, kind: str) -> RequestValidationError:
        return RequestValidationError([{"loc": ("body",), "msg": msg, "type": kind}])

    if not raw.strip():
        raise refuse("the body is empty; send a JSON object", "missing")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise refuse(
                f"JSON nested too deep: arrays and objects may nest at most {JSON_DEPTH} "
                f"levels ({exc}); send a flatter body",
                "json_too_deep",
            ) from None
        raise refuse(f"the body is not valid UTF-8 JSON ({exc})", "json_invalid") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials else None


def _typed_rows(rows: list[dict[str, Any]], types: dict[str, pa.DataType]) -> pa.Table:
    """Rows from JSON as Arrow; ISO 8601 strings become the group's timestamps and dates."""
    names = dict.fromkeys(k for r in rows for k in r)
    arrays = {}
    for name in names:
        values = [r.get(name) for r in rows]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            # mixed types or integers beyond 64 bits: say which column and row
            bad = next((i for i, v in enumerate(values) if not _readable(values, v)), None)
            raise DataError(
                f"column {name!r}: values not readable ({exc}); first at row {bad} "
                f"({values[bad] if bad is not None else ''!r}). Send one JSON type per "
                "column, integers within 64 bits."
            ) from exc
    table = pa.table(arrays)
    for i, name in enumerate(table.column_names):
        want = types.get(name)
        column = table.column(i)
        if want is None or not pa.types.is_string(column.type):
            continue
        if pa.types.is_timestamp(want) or pa.types.is_date(want):
            table = table.set_column(i, name, pc.cast(column, want))
    return table


def _readable(values: list[Any], value: Any) -> bool:
    """Whether ``value`` converts alone and as the first non-null value's type."""
    first = next((v for v in values if v is not None), None)
    try:
        pa.array([first, value])
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return False


def _mount_ui(app: FastAPI, store: FeatureStore) -> None:
    """The web UI under /ui (docs/ui.md): it checks the same tokens, also with --insecure."""
    from featureledger.ui import create_ui

    app.mount("/ui", create_ui(store), name="ui")
