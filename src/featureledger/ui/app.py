"""The web UI as one ASGI app: `create_ui` over a `FeatureStore`.

Served alone by ``featureledger ui`` or mounted by the feature server under ``/ui``. Every
page needs a valid API token (the login form, or ``Authorization: Bearer``); only the
static files (style sheet, scripts) are public. Every response carries a CSP without inline
scripts and forbids framing. docs/ui.md names the decisions."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from featureledger.errors import (
    AccessDeniedError,
    FeatureLedgerError,
    NotFoundError,
    TokenError,
)
from featureledger.ui import catalog, governance, graph  # noqa: F401  (they register pages)
from featureledger.ui._render import PAGES, BadInput, Ctx, Page, environment
from featureledger.ui.auth import LOGIN_COOKIE, SESSION_COOKIE, Sessions, Viewer, same
from featureledger.ui.governance import AuditChecks
from featureledger.ui.graph import GraphCache

if TYPE_CHECKING:
    from featureledger.store import FeatureStore

#: scripts and styles only from the package's own static files; images may be data: URIs
#: (the drift plots); nothing may frame the UI
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
#: bounds what a form may post: only the login token, a CSRF token and a short reason
MAX_FORM_BYTES = 16 << 10


class _SecurityHeaders:
    """Adds `HEADERS` to every response, and ``Cache-Control: no-store`` to pages (they
    hold data a token was needed for; static files may be cached)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = _local_path(scope).startswith("/static/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *HEADERS]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


def create_ui(store: FeatureStore) -> Starlette:
    """The web UI over ``store`` (mount it anywhere: links follow the mount path)."""
    env = environment()
    sessions = Sessions()

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    def cookie_path(request: Request) -> str:
        return str(request.scope.get("root_path", "")) or "/"

    def login_page(request: Request, *, status: int, message: str = "") -> Response:
        """The sign-in form; answers every request without a valid token."""
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        nxt = _local_path(request.scope) + (f"?{request.url.query}" if request.url.query else "")
        html = env.get_template("login.html").render(
            root=request.scope.get("root_path", ""),
            csrf=nonce,
            next=_safe_next(request.query_params.get("next", nxt)),
            message=message,
            viewer=None,
            nav=[],
        )
        response = HTMLResponse(html, status_code=status)
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path=cookie_path(request),
        )
        return response

    def viewer_of(request: Request) -> Viewer:
        """The caller, or `TokenError`: a bearer header first, then the session cookie."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise TokenError("the Authorization header must be `Bearer <token>`")
            return Viewer(store.check_token(secret.strip()), via="bearer")
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise TokenError("sign in with an API token to see this page")
        return Viewer(store.check_token(session.secret), csrf=session.csrf)

    def error_page(request: Request, viewer: Viewer | None, status: int, message: str) -> Response:
        html = env.get_template("error.html").render(
            root=request.scope.get("root_path", ""),
            viewer=viewer,
            nav=[(p.nav, p.path) for p in PAGES if p.nav],
            status=status,
            message=message,
        )
        return HTMLResponse(html, status_code=status)

    def endpoint(p: Page) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            form: FormData | None = None
            if request.method == "POST":
                form = await _read_form(request)
                if form is None:
                    return error_page(request, None, 413, "the form is too large")
            return await run_in_threadpool(serve, p, request, form)

        return run

    def serve(p: Page, request: Request, form: FormData | None) -> Response:
        try:
            viewer = viewer_of(request)
        except TokenError as exc:
            # revoked or unknown: the session is useless, drop it
            if request.cookies.get(SESSION_COOKIE):
                sessions.close(request.cookies.get(SESSION_COOKIE))
            return login_page(request, status=401, message=str(exc))
        fields = {k: str(v) for k, v in (form or {}).items()}
        # a bearer header is never sent by a browser on its own: only sessions need the token
        posted = request.method == "POST" and viewer.via == "session"
        if posted and not same(fields.get("csrf"), viewer.csrf):
            return error_page(
                request,
                viewer,
                403,
                "the form's CSRF token is missing or wrong (a form from another page or "
                "an expired session); reload the page and submit again",
            )
        ctx = Ctx(request, store, viewer, env, fields)
        try:
            return p.handler(ctx)
        except AccessDeniedError as exc:
            return error_page(request, viewer, 403, str(exc))
        except NotFoundError as exc:
            return error_page(request, viewer, 404, str(exc))
        except (BadInput, FeatureLedgerError) as exc:
            return error_page(request, viewer, 400, str(exc))

    async def login(request: Request) -> Response:
        if request.method == "GET":
            if request.cookies.get(SESSION_COOKIE) and sessions.get(
                request.cookies.get(SESSION_COOKIE)
            ):
                return RedirectResponse(_safe_next(request.query_params.get("next", "")), 303)
            return login_page(request, status=200)
        form = await _read_form(request)
        if form is None:
            return error_page(request, None, 413, "the form is too large")
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not same(str(form.get("csrf", "")), nonce):
            return login_page(
                request, status=403, message="the sign-in form expired; sign in again"
            )
        secret = str(form.get("token", "")).strip()
        try:
            await run_in_threadpool(store.check_token, secret)
        except TokenError as exc:
            return login_page(request, status=401, message=str(exc))
        sid, _ = sessions.open(secret)
        root = str(request.scope.get("root_path", ""))
        target = root + _safe_next(str(form.get("next", "/")))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path=cookie_path(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path=cookie_path(request))
        return response

    async def logout(request: Request) -> Response:
        form = await _read_form(request)
        sid = request.cookies.get(SESSION_COOKIE)
        session = sessions.get(sid)
        if session is None or form is None or not same(str(form.get("csrf", "")), session.csrf):
            return error_page(request, None, 403, "sign-out refused: the CSRF token is wrong")
        sessions.close(sid)
        response = RedirectResponse(str(request.scope.get("root_path", "")) + "/login", 303)
        response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))
        return response

    static = StaticFiles(directory=str(files("featureledger.ui") / "static"))
    routes: list[Any] = [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=static, name="static"),
    ]
    routes += [Route(p.path, endpoint(p), methods=list(p.methods)) for p in PAGES]
    app = Starlette(routes=routes)
    app.add_middleware(_SecurityHeaders)
    app.state.sessions = sessions
    app.state.store = store
    app.state.env = env
    app.state.audit_checks = AuditChecks()
    app.state.graphs = GraphCache()
    return app


async def _read_form(request: Request) -> FormData | None:
    """The urlencoded form of a POST, or None when it is larger than `MAX_FORM_BYTES`."""
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_FORM_BYTES:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    pairs: list[tuple[str, str | Any]] = list(
        parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    )
    return FormData(pairs)


def _safe_next(target: str) -> str:
    """A path inside the UI to return to after signing in; never another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if target.startswith(("/login", "/logout")):
        return "/"
    return target


def _local_path(scope: Scope) -> str:
    """The request path inside the UI (without the path it is mounted under)."""
    path = str(scope["path"])
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"
