"""What the route handlers share: the service's settings and parts, and request helpers (forms, uploads, who is
asking and may they). Kept apart from :mod:`realtime.serve.app` so the routers do not import the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from realtime.serve.accounts import Accounts
from realtime.serve.adminlog import AdminLog
from realtime.serve.engine import Engine
from realtime.serve.security import (CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, AuthError, LoginLimiter, Principal,
                                     csrf_ok, key_from)
from realtime.serve.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, UploadError, UploadLimits, decode_image

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
@dataclass(frozen=True)
class ServeSettings:
    """How the service runs. ``open_read``: detection/recognition without a key while no API key exists (as
    DeepStack without ``API-KEY``); changing the gallery always needs an admin key or an administrator's session."""

    host: str = "127.0.0.1"
    port: int = 8000
    tls: bool = False
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS
    open_read: bool = True
    doors: tuple = field(default=())


@dataclass
class Services:
    """What the request handlers reach: the models, accounts, admin log, settings and the running doors."""

    engine: Engine
    accounts: Accounts
    admin_log: AdminLog
    settings: ServeSettings
    limiter: LoginLimiter
    doors: Any = None  # realtime.serve.doors.DoorRunner or None


# ------------------------------------------------------------------------------------------ request helpers
def services(request) -> Services:
    return request.app.state.services


def limits(request) -> UploadLimits:
    s = services(request).settings
    return UploadLimits(max_bytes=s.max_upload_bytes, max_pixels=s.max_pixels)


async def read_form(request):
    """The multipart/urlencoded form, with Starlette's limits on parts and fields."""
    from realtime.serve.security import BodyTooLarge

    try:
        return await request.form(max_files=16, max_fields=64)
    except BodyTooLarge:
        raise
    except Exception as exc:  # Starlette raises its own parse errors for a malformed body
        raise UploadError(400, f"the form cannot be read ({type(exc).__name__})") from None


async def form_image(request, form, field_name: str = "image"):
    """The decoded BGR image of form file ``field_name`` (400 when missing)."""
    upload = form.get(field_name)
    if upload is None or isinstance(upload, str):
        raise UploadError(400, "No valid image file found" + ("" if field_name == "image" else f" ({field_name})"))
    data = await upload.read(limits(request).max_bytes + 1)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(decode_image, data, field_name, limits(request))


async def form_images(request, form, prefix: str = "image") -> list:
    """``[(field name, BGR image)]`` of every uploaded file whose field starts with ``prefix`` (400 when none)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile

    out = []
    for key, value in form.multi_items():
        if key.startswith(prefix) and isinstance(value, UploadFile):
            data = await value.read(limits(request).max_bytes + 1)
            label = value.filename or key
            out.append((label, await run_in_threadpool(decode_image, data, label, limits(request))))
    if not out:
        raise UploadError(400, "No valid image file found")
    return out


def principal(request, form=None) -> Principal | None:
    """The key or session behind a request, None when neither (a bad key is an error: 401)."""
    svc = services(request)
    secret = key_from(request.headers, form)
    if secret:
        key = svc.accounts.key(secret)
        if key is None:
            raise AuthError(401, "the API key is not valid")
        return Principal("key", key.name, key.role)
    token = request.cookies.get(SESSION_COOKIE)
    session = svc.accounts.session(token)
    if session is not None:
        return Principal("session", session.user, "admin", session.csrf)
    return None


def require(request, form=None, *, admin: bool) -> Principal | None:
    """The caller, checked: ``admin`` needs an admin key or an administrator's session (with the CSRF token for a
    state-changing request); otherwise any key or session, or nobody while no key exists and ``open_read``."""
    who = principal(request, form)
    svc = services(request)
    if who is None:
        if not admin and svc.settings.open_read and not svc.accounts.has_keys():
            return None
        raise AuthError(401, "authentication required: an API key (X-API-Key header or api_key field) or a "
                             "console session")
    if who.kind == "session" and request.method in STATE_CHANGING:
        given = request.headers.get(CSRF_HEADER) or (form.get(CSRF_FIELD) if form is not None else None)
        if not csrf_ok(who.csrf, given if isinstance(given, str) else None):
            raise AuthError(403, "missing or wrong CSRF token")
    if admin and not who.is_admin:
        raise AuthError(403, f"the key {who.name!r} is read-only; this needs an admin key")
    return who


def number(form, name: str, default: float, lo: float = 0.0, hi: float = 1.0) -> float:
    value = form.get(name)
    if value is None or value == "":
        return default
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UploadError(400, f"{name} must be a number, got {str(value)[:40]!r}") from None
    if not (lo <= x <= hi):
        raise UploadError(400, f"{name} must be between {lo:g} and {hi:g}, got {x:g}")
    return x


def who_name(who: Principal | None) -> str:
    return "anonymous" if who is None else f"{who.kind}:{who.name}"


def json_ready(value: Any) -> Any:
    import math

    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def capture_and_enrol(svc, name: str, door: str, shots: int):
    """Frames from the door that pass the gates, then the enrolment (:class:`EnrollmentError` when too few)."""
    from realtime.errors import ConfigError, EnrollmentError
    from realtime.gallery.names import check_name

    check_name(name)
    if svc.doors is None:
        raise ConfigError("no door runs in this service")
    frames, reason = svc.doors.capture(door, svc.engine.enrolment_problem, shots=shots)
    if len(frames) < shots:
        raise EnrollmentError(f"only {len(frames)} of {shots} usable frames from door {door!r} in 20 s (last "
                              f"problem: {reason}); nothing was enrolled")
    return svc.engine.enroll(name, frames)
