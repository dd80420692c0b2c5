"""The explorer's web app: a Starlette app over the runs' sessions, guarded like a Jupyter server.

    GET  /                          the page (sets the token cookie when the URL carries ?token=...)
    GET  /static/{app.js,style.css} its script and style, shipped in the package: no CDN, works offline
    GET  /api/runs                  the runs given on the command line, by index (never a path)
    POST /api/runs/{i}/view         tokens, next-token distribution, attention, logit lens (heads off: ablate)
    GET  /api/runs/{i}/roles        each head's role over validation data (cached)
    POST /api/runs/{i}/patch        activation-patching grids of built-in minimal pairs (cached)
    POST /api/runs/{i}/sample       a continuation streamed as server-sent events: data: {"piece": ...}
    POST /api/runs/{i}/translate    a translation, its attention against gold links, the decoder's lens (ablate)

Every request passes `Guard` first: the Host header must name the server (a page on another site that
rebinds its DNS name to 127.0.0.1 sends its own name, and is refused), the access token must come in the
query or the cookie the page got with it, and a body may hold at most MAX_BODY_BYTES. A mistake (a
prompt too long, a head that does not exist) is a 400 with {"error": "one line"}; anything else is a
500 with a fixed message and a traceback in the server's log only. Responses forbid other origins'
scripts, framing and sniffing (`SECURITY_HEADERS`).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Sequence
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minitx.errors import UserError
from minitx.serve.session import Controls, RunSession

log = logging.getLogger("minitx.serve")

#: The largest request body accepted (a prompt is at most MAX_TEXT_CHARS; this leaves room for the JSON).
MAX_BODY_BYTES = 64 * 1024
#: Host names that always mean this machine.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
#: The files the page loads, and their types: nothing else is ever read from disk for a client.
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # the token in the URL never leaves in a Referer
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
]


def cookie_name(port: int | None) -> str:
    """The token cookie's name; with the port in it, two servers on one machine keep their own."""
    return f"minitx-token-{port or 0}"


def split_host(value: str) -> tuple[str, int | None]:
    """A Host header as (name, port): "127.0.0.1:8000" -> ("127.0.0.1", 8000), "[::1]:80" -> ("::1", 80).

        >>> split_host("localhost:5000"), split_host("[::1]:8080"), split_host("example.com")
        (('localhost', 5000), ('::1', 8080), ('example.com', None))
    """
    value = value.strip().lower()
    if value.startswith("["):  # an IPv6 literal
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = value.partition(":")
    return name, int(port) if port.isdigit() else None


def json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Guard:
    """ASGI middleware: Host check (DNS rebinding), access token, body size; security headers on every answer."""

    def __init__(self, app: ASGIApp, *, token: str, port: int | None, allowed_hosts: frozenset[str],
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token
        self.port = port
        self.allowed_hosts = allowed_hosts
        self.max_body = max_body
        self.cookie = cookie_name(port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        refusal = self.refusal(scope)
        if refusal is not None:
            status, message = refusal
            log.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), message)
            await json_error(status, message)(scope, receive, send_with_headers)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise HTTPException(413, f"the request is larger than {self.max_body // 1024} KB")
            return message

        await self.app(scope, limited_receive, send_with_headers)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, why) when the request must be refused before it reaches the app, else None."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        name, port = split_host(headers.get("host", ""))
        if name not in self.allowed_hosts or (self.port is not None and port != self.port):
            return 403, "this server answers only to the address minitx serve printed (Host header refused)"
        if not self.token_given(scope, headers):
            return 403, "open the page with the URL minitx serve printed: it carries the access token (?token=...)"
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.max_body:
            return 413, f"the request is larger than {self.max_body // 1024} KB"
        return None

    def token_given(self, scope: Scope, headers: dict[str, str]) -> bool:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        candidates = list(query.get("token", []))
        if "cookie" in headers:
            cookies = SimpleCookie()
            try:
                cookies.load(headers["cookie"])
            except Exception:
                cookies = SimpleCookie()
            if self.cookie in cookies:
                candidates.append(cookies[self.cookie].value)
        return any(secrets.compare_digest(c.encode(), self.token.encode()) for c in candidates)


# ---------------------------------------------------------------------------------------------- reading requests


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object body; a UserError for anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise UserError("send the request as JSON (Content-Type: application/json)")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise UserError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    return body


def _number(body: dict[str, Any], key: str, default: float | None, kind: type = float) -> Any:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{key} must be a number")
    if kind is int and value != int(value):
        raise UserError(f"{key} must be a whole number")
    return kind(value)


def controls_of(body: dict[str, Any]) -> Controls:
    return Controls(temperature=_number(body, "temperature", 1.0), top_k=_number(body, "top_k", None, int),
                    top_p=_number(body, "top_p", None))


def heads_of(body: dict[str, Any], session: RunSession) -> list[tuple[str, int]]:
    """The heads to switch off, [[map, head], ...] ("blocks.0.attn", 1): the session checks that each exists."""
    value = body.get("ablate", [])
    limit = sum(m.heads for m in session.maps if m.ablatable)
    if not isinstance(value, list) or len(value) > limit:
        raise UserError(f"ablate must be a list of at most {limit} [attention map, head] pairs")
    heads = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                or not isinstance(item[1], int) or isinstance(item[1], bool)):
            raise UserError('each head to switch off is [attention map, head], e.g. ["blocks.0.attn", 1]')
        heads.append((item[0], item[1]))
    return heads


def text_of(body: dict[str, Any], key: str = "text") -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise UserError(f"{key} must be a string")
    return value


# ---------------------------------------------------------------------------------------------- the app


def create_app(sessions: Sequence[RunSession], *, token: str, port: int | None,
               allowed_hosts: frozenset[str] = LOOPBACK_NAMES, max_body: int = MAX_BODY_BYTES) -> Starlette:
    """The app serving `sessions` (the client names one by its index), behind `Guard`."""
    from starlette.middleware import Middleware

    page = (resources.files("minitx.serve") / "static" / "index.html").read_text(encoding="utf-8")
    static = {name: (resources.files("minitx.serve") / "static" / name).read_bytes() for name in STATIC}
    cookie = cookie_name(port)

    def session_of(request: Request) -> RunSession:
        index = request.path_params["index"]
        if not 0 <= index < len(sessions):
            raise HTTPException(404, f"there is no run {index}; this server has runs 0..{len(sessions) - 1}")
        return sessions[index]

    async def index(request: Request) -> Response:
        response = Response(page, media_type="text/html; charset=utf-8")
        given = request.query_params.get("token")
        if given is not None and secrets.compare_digest(given.encode(), token.encode()):
            response.set_cookie(cookie, token, httponly=True, samesite="strict", path="/")
        return response

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            raise HTTPException(404, "no such file")
        return Response(static[name], media_type=STATIC[name])

    async def runs(request: Request) -> Response:
        return JSONResponse({"runs": [s.info() for s in sessions]})

    async def view(request: Request) -> Response:
        session, body = session_of(request), await read_json(request)
        answer = await run_in_threadpool(session.view, text_of(body), controls_of(body), heads_of(body, session))
        return JSONResponse(answer)

    async def roles(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(session_of(request).roles_over_data))

    async def patch(request: Request) -> Response:
        session, body = session_of(request), await read_json(request)
        phenomenon = text_of(body, "phenomenon")
        if phenomenon not in session.info()["phenomena"]:
            raise UserError(f"{phenomenon!r} is not a built-in pair of this run; choose one of: "
                            f"{', '.join(session.info()['phenomena'])}")
        return JSONResponse(await run_in_threadpool(session.patching, phenomenon))

    async def translate(request: Request) -> Response:
        session, body = session_of(request), await read_json(request)
        return JSONResponse(await run_in_threadpool(session.translate, text_of(body, "sentence"),
                                                    heads_of(body, session)))

    async def sample(request: Request) -> Response:
        session, body = session_of(request), await read_json(request)
        seed = _number(body, "seed", None, int)
        max_new = _number(body, "max_new_tokens", 100, int)
        pieces = await run_in_threadpool(session.sample, text_of(body), controls_of(body), max_new, seed,
                                         heads_of(body, session))

        def events():
            try:
                for piece in pieces:
                    yield f"data: {json.dumps({'piece': piece})}\n\n"
                yield f"data: {json.dumps({'done': True})}\n\n"
            except UserError as e:
                yield f"data: {json.dumps({'error': str(e)})}\n\n"
            except Exception:
                log.exception("sampling failed")
                yield f"data: {json.dumps({'error': 'sampling failed (see the server log)'})}\n\n"

        return StreamingResponse(iterate_in_threadpool(events()), media_type="text/event-stream")

    async def user_error(request: Request, exc: Exception) -> Response:
        log.info("%s %s: %s", request.method, request.url.path, exc)
        return json_error(400, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return json_error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return json_error(500, "the server failed on this request (its log has the details)")

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/api/runs", runs, methods=["GET"]),
        Route("/api/runs/{index:int}/view", view, methods=["POST"]),
        Route("/api/runs/{index:int}/roles", roles, methods=["GET"]),
        Route("/api/runs/{index:int}/patch", patch, methods=["POST"]),
        Route("/api/runs/{index:int}/sample", sample, methods=["POST"]),
        Route("/api/runs/{index:int}/translate", translate, methods=["POST"]),
    ]
    middleware = [Middleware(Guard, token=token, port=port, allowed_hosts=allowed_hosts, max_body=max_body)]
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={UserError: user_error, HTTPException: http_error, Exception: server_error})


def allowed_hosts_for(host: str) -> frozenset[str]:
    """The Host names the server answers to: loopback names always; a named --host too; for a wildcard
    (0.0.0.0, ::) this machine's name and addresses."""
    import socket

    names = set(LOOPBACK_NAMES)
    host = host.strip("[]").lower()
    if host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        try:
            names |= set(socket.gethostbyname_ex(hostname)[2])
        except OSError:
            pass
    else:
        names.add(host)
    return frozenset(names)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    import ipaddress

    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A fresh random access token (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)
