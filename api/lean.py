"""The lean path: the hot routes answered without Litestar's per-request machinery.

`GET /v1/me/wallet`, `POST /v1/points/grants`, `POST /v1/points/deductions`,
`POST /v1/me/campaigns/{id}/spins` and `POST /v1/me/redemptions` are what a dealer
meeting's phones and a CRM's bulk moves hit; a profile of them under load (bench/profile.py) spent a third of the API's CPU
in Litestar's routing, handler signature model, guard and response machinery, for routes
whose whole job is one Redis function call. The phone's history page
(`GET /v1/me/transactions`), the catalog page (`GET /v1/catalog/items`, its `limit` and
`cursor`: a search goes to Litestar) and a partner's claim and fulfil
(`POST /v1/fulfillment/orders/claim`, `POST /v1/fulfillment/orders/{id}/fulfill`) came next
in the load mix of issue #13: at 1,000 requests/s one worker spent 0.92 of a core, and
those three were the operations past their p99 target first. This layer sits outside Litestar (it wraps the
app's ASGI handler) and answers those requests itself with the very same pieces: the route
handler Litestar registered (its opt, its path template for the metrics), the metrics
middleware, the gate (api/gate.py: request id, access log, authentication, rate limits,
the gate carried into the operation's call), the guard's principal kinds, the route's
answer function (`wallet_of`, `move_or_ask`, `spin_for`, `redeem_as`, `history_of`,
`catalog_page`, `claim_for`, `fulfil_as`), the exception
handlers (api/problems.py) and the `before_send` headers (Litestar wraps `send` with them
before this layer).

It answers only what it is sure of and hands the rest to Litestar untouched: another
method or path, a CORS request when origins are configured, a body that is not plain JSON
of the route's type under strict decoding (too large, another media type, deeply nested,
malformed, invalid: Litestar's answer names the problem), a query string other than the
plainest form of the route's parameters, all before anything is counted. A route whose
guard is not a principal-kind guard is refused at start-up: this layer would skip it.
The routes stay Litestar routes for the OpenAPI document and for `RW_LEAN_ROUTES=0`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import msgspec
from litestar import Litestar
from litestar.middleware._internal.exceptions.middleware import get_exception_handler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import admit_kinds
from api.idempotency import HEADER, idem_for, valid_header
from api.json_body import MAX_DEPTH, is_json_media_type
from api.problems import exception_handlers
from api.routes.catalog import NO_CACHE, Search, catalog_page
from api.routes.fulfillment import ClaimRequest, FulfilRequest, RedemptionRequest, claim_for, fulfil_as, redeem_as
from api.routes.me import history_of, wallet_of
from api.routes.points import PointsRequest, move_or_ask
from api.routes.spins import spin_for
from kernel.idempotency import Idem
from kernel.pages import MAX_LIMIT

SPINS_PREFIX = "/v1/me/campaigns/"
SPINS_SUFFIX = "/spins"
_HEADER = HEADER.lower().encode()
_JSON = [(b"content-type", b"application/json")]
_REPLAYED = (b"idempotent-replayed", b"true")
_encode = msgspec.json.Encoder().encode


class Answer(NamedTuple):
    status: int
    body: Any  # encoded as JSON; bytes: JSON already; None: no body
    replayed: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Call(NamedTuple):
    """What a hot route's answer function gets: the app's state, the admitted principal,
    the decoded body (or the decoded query, or None), the raw body and the path parameter
    (or "")."""

    state: Any
    principal: Any
    data: Any
    body: bytes
    param: str


Handler = Callable[[Scope, Call], Awaitable[Answer]]


class HotRoute(NamedTuple):
    operation_id: str
    decoder: msgspec.json.Decoder[Any] | None  # the body's type, strictly; None: no body
    answer: Handler
    # The query's parameters from the raw query string, or None for one Litestar should
    # answer; no parser: the route takes no query (any is ignored, as Litestar does).
    query: Callable[[bytes], Any] | None = None


def _idem(scope: Scope, principal: Any, body: bytes) -> Idem:
    value = None
    for name, raw in scope["headers"]:
        if name == _HEADER:
            value = raw.decode("latin-1")
            break
    return idem_for(principal, valid_header(value), scope["method"], scope["path"], body)


async def _wallet(scope: Scope, call: Call) -> Answer:
    return Answer(200, await wallet_of(call.state.wallets, call.principal))


async def _grant(scope: Scope, call: Call) -> Answer:
    answer = await move_or_ask(call.state, call.principal, "grant", call.data, _idem(scope, call.principal, call.body))
    return Answer(answer.status, answer.body, answer.replayed)


async def _deduct(scope: Scope, call: Call) -> Answer:
    answer = await move_or_ask(call.state, call.principal, "deduction", call.data,
                               _idem(scope, call.principal, call.body))
    return Answer(answer.status, answer.body, answer.replayed)


async def _spin(scope: Scope, call: Call) -> Answer:
    idem = _idem(scope, call.principal, call.body)
    view, replayed = await spin_for(call.state.wallets, call.state.sealer, call.principal, call.param, idem)
    return Answer(201, view, replayed)


async def _redeem(scope: Scope, call: Call) -> Answer:
    idem = _idem(scope, call.principal, call.body)
    view, replayed = await redeem_as(call.state.wallets, call.state.sealer, call.state.settings.idempotency_ttl_seconds,
                                     call.principal, call.data, idem)
    return Answer(201, view, replayed)


async def _history(scope: Scope, call: Call) -> Answer:
    limit, cursor = call.data
    return Answer(200, await history_of(call.state.redis, call.principal, limit, cursor))


async def _claim(scope: Scope, call: Call) -> Answer:
    return Answer(200, await claim_for(call.state.wallets, call.state.sealer, call.principal, call.data))


async def _fulfil(scope: Scope, call: Call) -> Answer:
    return Answer(200, await fulfil_as(call.state.wallets, call.state.sealer, call.principal, call.param, call.data))


_IF_NONE_MATCH = b"if-none-match"
_NO_CACHE = NO_CACHE.encode()


async def _catalog(scope: Scope, call: Call) -> Answer:
    limit, cursor = call.data
    match = next((value.decode("latin-1") for name, value in scope["headers"] if name == _IF_NONE_MATCH), None)
    page = await catalog_page(call.state.redis, call.principal, scope["query_string"].decode("latin-1"), match,
                              Search(limit=limit, cursor=cursor))
    etag = (b"etag", page.etag.encode("latin-1"))
    if page.body is None:
        return Answer(304, None, headers=(etag,))
    return Answer(200, page.body, headers=(etag, (b"cache-control", _NO_CACHE)))


_CURSOR_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def page_query(query: bytes) -> tuple[int, str | None] | None:
    """`limit` and `cursor` of a page (Limit, Cursor: api/routes/participants.py) when the
    query is their plainest form: each at most once, the limit digits within 1..200, the
    cursor one this API issues (base64url, no escapes); None for anything else, which
    Litestar parses and, when it is wrong, answers."""
    limit, cursor = 50, None
    seen: set[bytes] = set()
    for part in query.split(b"&") if query else ():
        name, equals, value = part.partition(b"=")
        if not equals or name in seen:
            return None
        seen.add(name)
        if name == b"limit" and value.isdigit() and len(value) <= 3 and 1 <= int(value) <= MAX_LIMIT:
            limit = int(value)
        elif name == b"cursor" and 0 < len(value) <= 200 and _CURSOR_CHARS.issuperset(value):
            cursor = value.decode("ascii")
        else:
            return None
    return limit, cursor


_points = msgspec.json.Decoder(PointsRequest, strict=True)
EXACT: dict[tuple[str, str], HotRoute] = {
    ("GET", "/v1/me/wallet"): HotRoute("getMyWallet", None, _wallet),
    ("POST", "/v1/points/grants"): HotRoute("grantPoints", _points, _grant),
    ("POST", "/v1/points/deductions"): HotRoute("deductPoints", _points, _deduct),
    ("POST", "/v1/me/redemptions"): HotRoute("redeem", msgspec.json.Decoder(RedemptionRequest, strict=True), _redeem),
    ("GET", "/v1/me/transactions"): HotRoute("listMyTransactions", None, _history, page_query),
    ("GET", "/v1/catalog/items"): HotRoute("listCatalogItems", None, _catalog, page_query),
    ("POST", "/v1/fulfillment/orders/claim"): HotRoute(
        "claimOrders", msgspec.json.Decoder(ClaimRequest, strict=True), _claim),
}
# Routes with one path parameter, a segment between a prefix and a suffix.
BETWEEN: tuple[tuple[str, str, str, str, HotRoute], ...] = (
    ("POST", SPINS_PREFIX, SPINS_SUFFIX, "campaign_id", HotRoute("spin", None, _spin)),
    ("POST", "/v1/fulfillment/orders/", "/fulfill", "order_id",
     HotRoute("fulfillOrder", msgspec.json.Decoder(FulfilRequest, strict=True), _fulfil)),
)


def _match(scope: Scope) -> tuple[HotRoute, str, str] | None:
    """The hot route of the request, its path parameter's name and value ("" for none)."""
    method, path = scope["method"], scope["path"]
    route = EXACT.get((method, path))
    if route is not None:
        return route, "", ""
    for verb, prefix, suffix, name, hot in BETWEEN:
        if method == verb and path.startswith(prefix) and path.endswith(suffix):
            param = path[len(prefix):-len(suffix)]
            if param and "/" not in param:
                return hot, name, param
    return None


def _plain_json(scope: Scope) -> bool:
    """No Content-Type (taken as JSON, as api/json_body.py does) or a JSON one."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return is_json_media_type(value.decode("latin-1"))
    return True


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, list[Message]]:
    """The whole body (None past `limit` or when the client left) and the messages read."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, messages
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives back what was already read, then goes on reading."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def lean_routes(app: Litestar, inner: ASGIApp, gate: Callable[[ASGIApp], ASGIApp],
                metrics: Callable[[ASGIApp], ASGIApp], max_body: int, cors: bool) -> ASGIApp:
    """The ASGI handler to install as `app.asgi_handler`, answering the hot routes and
    handing everything else to `inner` (Litestar's own handler)."""
    handlers = {handler.operation_id: (handler, route.path_format)
                for route in app.routes for handler in getattr(route, "route_handlers", ())}
    served: dict[str, tuple[Any, str, ASGIApp]] = {}
    for hot in (*EXACT.values(), *(between[-1] for between in BETWEEN)):
        handler, template = handlers[hot.operation_id]
        guards = handler.resolve_guards()  # the app's and routers' too
        if any(not hasattr(g, "kinds") for g in guards) or handler.middleware:
            raise RuntimeError(f"{hot.operation_id}: a guard or middleware the lean path cannot apply "
                               "(it applies principal kinds only)")
        kinds = frozenset().union(*(getattr(g, "kinds", frozenset()) for g in guards))
        served[hot.operation_id] = (handler, template, metrics(gate(_endpoint(hot, kinds))))

    async def lean(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (matched := _match(scope)) is None:
            await inner(scope, receive, send)
            return
        hot, param_name, param = matched
        if cors and any(name == b"origin" for name, _ in scope["headers"]):
            await inner(scope, receive, send)
            return
        body, data = b"", None
        if hot.query is not None and (data := hot.query(scope["query_string"])) is None:
            await inner(scope, receive, send)
            return
        if hot.decoder is not None:
            read, messages = await _read_body(receive, max_body)
            data = None if read is None else _decoded(hot.decoder, read, scope)
            if data is None:
                await inner(scope, _replaying(messages, receive), send)
                return
            body = read or b""
        handler, template, serve = served[hot.operation_id]
        scope["route_handler"] = handler
        scope["path_template"] = template
        scope["path_params"] = {param_name: param} if param_name else {}
        scope["lean"] = Call(app.state, None, data, body, param)
        await _answering_errors(app, serve, scope, receive, send)

    return lean


def _decoded(decoder: msgspec.json.Decoder[Any], body: bytes, scope: Scope) -> Any:
    """The body as the route's type, or None for anything Litestar should answer."""
    if not body or not _plain_json(scope) or body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        return None
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None


def _endpoint(hot: HotRoute, kinds: frozenset[str]) -> ASGIApp:
    """The innermost app: the guard's kinds, the answer function, the JSON response."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        call: Call = scope["lean"]
        principal = admit_kinds(scope.get("user"), kinds)
        answer = await hot.answer(scope, call._replace(principal=principal))
        if answer.body is None:
            await send({"type": "http.response.start", "status": answer.status, "headers": [*answer.headers]})
            await send({"type": "http.response.body", "body": b""})
            return
        encoded = answer.body if isinstance(answer.body, bytes) else _encode(answer.body)
        headers = [*_JSON, (b"content-length", str(len(encoded)).encode()), *answer.headers]
        if answer.replayed:
            headers.append(_REPLAYED)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})

    async def handled(scope: Scope, receive: Receive, send: Send) -> None:
        # Inside the gate and the metrics, as Litestar puts an exception handler between a
        # handler and its middleware: an error answer carries the request id and the
        # RateLimit headers and is counted at its status.
        await _answering_errors(scope["litestar_app"], endpoint, scope, receive, send)

    return handled


async def _answering_errors(app: Litestar, inner: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Runs `inner`, answering an exception with the problem document Litestar's exception
    handling would (api/problems.py's handlers), unless the response had started."""
    started = False

    async def noting_send(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await inner(scope, receive, noting_send)
    except Exception as exc:
        handler = get_exception_handler(exception_handlers, exc)
        if started or handler is None:
            raise
        request = app.request_class(scope=scope, receive=receive, send=send)
        await handler(request, exc).to_asgi_response(app=None, request=request)(scope, receive, send)
