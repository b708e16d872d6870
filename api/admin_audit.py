"""Every change an admin key makes through the API is on the audit log: after a POST, PUT,
PATCH or DELETE by an admin answers below 400, one row names the key, the operation and what
it was done to (the path's ids). The row is written after the answer has gone out, so the
caller waits for nothing.

Routes that write a fuller row themselves (settings, approvals, announcements, cancels) say
so with `opt={"audit": "self"}`, and a POST that changes nothing (a simulation) with
`opt={"audit": "none"}`. Manual grants and deductions never reach this layer: the lean path
answers them, and the projector writes their rows from the journal (programs/audit.py)."""

from __future__ import annotations

import logging

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from programs import audit

log = logging.getLogger("rw.audit")
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def admin_audit(app: ASGIApp) -> ASGIApp:
    async def audit_layer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGES:
            await app(scope, receive, send)
            return
        status = 0

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await app(scope, receive, send_seen)
        user = scope.get("user")
        handler = scope.get("route_handler")
        if (status >= 400 or status == 0 or getattr(user, "kind", None) != "admin" or handler is None
                or handler.opt.get("audit") in ("self", "none") or not user.program_id):
            return
        ids = "/".join(str(v) for v in (scope.get("path_params") or {}).values())
        try:
            await audit.record(user.program_id, f"key:{user.subject_id}", f"api.{handler.operation_id}", ids,
                               method=scope["method"], path=scope["path"], status=status)
        except Exception:  # the change stands; a lost row is logged, never a failed answer
            log.exception("could not write the audit row of %s %s", scope["method"], scope["path"])

    return audit_layer
