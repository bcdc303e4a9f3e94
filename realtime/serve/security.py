"""Who is asking, and may they: API keys, console sessions, CSRF, sign-in rate limits, security headers, request
size limit.

* API keys (``rtv serve apikey add NAME --role read|admin``) come in the ``X-API-Key`` header, an
  ``Authorization: Bearer`` header, or (DeepStack clients) the form fields ``api_key`` / ``admin_key``. A read key
  may run detection and recognition; an admin key may also change the gallery.
* Console sessions are an HttpOnly, SameSite=Strict cookie (Secure under TLS) naming a server-side session; every
  state-changing request made with the cookie must carry the session's CSRF token (form field ``csrf_token`` or
  header ``X-CSRF-Token``). A request that changes state without a key or a session is refused (401), and with a
  session but without the token (403).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from dataclasses import dataclass

SESSION_COOKIE = "rtv_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_WINDOW_S = 300.0
LOGIN_ATTEMPTS_PER_WINDOW = 30  # per client address, whatever the account

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


@dataclass(frozen=True)
class Principal:
    """Who made a request: ``kind`` "key" or "session", the key's or user's name, and the role."""

    kind: str
    name: str
    role: str
    csrf: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginLimiter:
    """At most :data:`LOGIN_ATTEMPTS_PER_WINDOW` sign-in attempts per client address in a sliding window (the
    per-account lockout lives in :class:`realtime.serve.accounts.Accounts`)."""

    def __init__(self, attempts: int = LOGIN_ATTEMPTS_PER_WINDOW, window_s: float = LOGIN_WINDOW_S,
                 clock=time.monotonic) -> None:
        self.attempts, self.window_s, self._clock = attempts, window_s, clock
        self._seen: dict[str, deque] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = self._clock()
        with self._lock:
            q = self._seen.setdefault(client, deque())
            while q and q[0] < now - self.window_s:
                q.popleft()
            if len(q) >= self.attempts:
                return False
            q.append(now)
            if len(self._seen) > 10000:  # bounded memory: forget the quiet addresses
                for key in [k for k, v in self._seen.items() if not v]:
                    del self._seen[key]
            return True


def key_from(headers, form=None) -> str | None:
    """The API key of a request: header ``X-API-Key``, ``Authorization: Bearer``, or form ``admin_key``/``api_key``."""
    value = headers.get("x-api-key")
    if value:
        return value
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if form is not None:
        for field in ("admin_key", "api_key"):
            v = form.get(field)
            if isinstance(v, str) and v:
                return v
    return None


def csrf_ok(session_csrf: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session_csrf.encode(), str(given).encode())


class SecurityHeaders:
    """Pure ASGI middleware: security headers on every answer, and a cap on the request body (413 beyond it)."""

    def __init__(self, app, max_body_bytes: int, tls: bool) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.tls = tls

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return await _send_json(send, 413, f"the request body is larger than {self.max_body_bytes} bytes")
        seen = 0
        limit = self.max_body_bytes

        async def capped_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                extra = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                         (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
                         (b"cross-origin-opener-policy", b"same-origin"),
                         (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]
                if self.tls or scope.get("scheme") == "https":
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except BodyTooLarge:
            await _send_json(send, 413, f"the request body is larger than {self.max_body_bytes} bytes")


class BodyTooLarge(Exception):
    pass


async def _send_json(send, status: int, message: str) -> None:
    import json

    body = json.dumps({"success": False, "error": message, "code": status}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})
