"""The administrators' console: server-rendered pages (Jinja2), one small script and one stylesheet of our own, no
inline script (the CSP forbids it). Sign-in, doors, enrolment by upload, the gallery (allow, deny, remove) and the
audit log (filter, verify, CSV).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from realtime.serve.deps import form_images, principal, read_form, require, services, who_name
from realtime.serve.security import CSRF_FIELD, SESSION_COOKIE, AuthError, csrf_ok

HERE = Path(__file__).parent
LOGIN_CSRF_COOKIE = "rtv_login_csrf"
router = APIRouter(include_in_schema=False)
_templates = None


def templates():
    global _templates
    if _templates is None:
        from fastapi.templating import Jinja2Templates

        _templates = Jinja2Templates(directory=str(HERE / "templates"))
    return _templates


def mount_static(app) -> None:
    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def _secure(request: Request) -> bool:
    return services(request).settings.tls or request.url.scheme == "https"


def _page(request: Request, name: str, who, status: int = 200, **context) -> HTMLResponse:
    context.update(user=None if who is None else who.name, csrf=getattr(who, "csrf", ""))
    return templates().TemplateResponse(request, name, context, status_code=status)


@router.get("/")
async def root():
    return RedirectResponse("/console/", status_code=303)


@router.get("/console/login")
async def login_page(request: Request, error: str = ""):
    token = secrets.token_urlsafe(24)
    response = _page(request, "login.html", None, login_csrf=token, error=error[:200])
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path="/console")
    return response


@router.post("/console/login")
async def login(request: Request):
    svc = services(request)
    client = request.client.host if request.client else "unknown"
    if not svc.limiter.allow(client):
        raise AuthError(429, "too many sign-in attempts from this address; wait a few minutes")
    form = await read_form(request)
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get(CSRF_FIELD)):
        raise AuthError(403, "missing or wrong CSRF token")
    user, password = str(form.get("username", "")), str(form.get("password", ""))
    result = await run_in_threadpool(svc.accounts.login, user, password)
    if result.session_token is None:
        if result.locked_s > 0:
            message = f"This account is locked for {int(result.locked_s // 60) + 1} minutes after too many wrong " \
                      "passwords."
        else:
            message = "Wrong user name or password."
        svc.admin_log.record(f"user:{user[:64]}", "sign-in refused", via="console",
                             detail={"client": client, "locked": result.locked_s > 0})
        return RedirectResponse("/console/login?error=" + _quote(message), status_code=303)
    svc.admin_log.record(f"user:{user}", "sign-in", via="console", detail={"client": client})
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(SESSION_COOKIE, result.session_token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/", max_age=12 * 3600)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@router.post("/console/logout")
async def logout(request: Request):
    form = await read_form(request)
    who = require(request, form, admin=True)
    services(request).accounts.logout(request.cookies.get(SESSION_COOKIE))
    services(request).admin_log.record(who_name(who), "sign-out", via="console")
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _console_user(request: Request):
    who = principal(request)
    if who is None or who.kind != "session":
        raise AuthError(401, "sign in first")
    return who


@router.get("/console/")
async def dashboard(request: Request):
    who = _console_user(request)
    runner = services(request).doors
    doors = [] if runner is None else runner.status()
    return _page(request, "dashboard.html", who, doors=doors)


def _door_ids(request: Request) -> list[str]:
    runner = services(request).doors
    return [] if runner is None else [d["id"] for d in runner.status()]


@router.get("/console/enrol")
async def enrol_page(request: Request):
    who = _console_user(request)
    return _page(request, "enrol.html", who, result=None, error="", doors=_door_ids(request))


@router.post("/console/enrol/capture")
async def enrol_capture(request: Request):
    """Enrol from a running door's camera: three frames that pass the quality gates."""
    from realtime.errors import RtvError
    from realtime.serve.deps import capture_and_enrol

    form = await read_form(request)
    who = require(request, form, admin=True)
    svc = services(request)
    name, door = str(form.get("name", "")), str(form.get("door", ""))
    try:
        outcome = await run_in_threadpool(capture_and_enrol, svc, name, door, 3)
    except RtvError as exc:
        return _page(request, "enrol.html", who, status=400, result=None, error=str(exc), name=name,
                     doors=_door_ids(request))
    svc.admin_log.record(who_name(who), "enrol", person=outcome.name, via="console",
                         detail={"photos": len(outcome.accepted), "from_door": door})
    return _page(request, "enrol.html", who, result=outcome, error="", doors=_door_ids(request))


@router.post("/console/enrol")
async def enrol(request: Request):
    form = await read_form(request)
    who = require(request, form, admin=True)
    svc = services(request)
    name = str(form.get("name", ""))
    from realtime.errors import RtvError
    from realtime.serve.uploads import UploadError

    try:
        images = await form_images(request, form, prefix="photos")
        outcome = await run_in_threadpool(lambda: svc.engine.enroll(name, images))
    except (RtvError, UploadError) as exc:
        return _page(request, "enrol.html", who, status=400, result=None, error=str(exc), name=name,
                     doors=_door_ids(request))
    svc.admin_log.record(who_name(who), "enrol", person=outcome.name, via="console",
                         detail={"photos": len(outcome.accepted), "refused": len(outcome.refused)})
    return _page(request, "enrol.html", who, result=outcome, error="", doors=_door_ids(request))


@router.get("/console/gallery")
async def gallery(request: Request):
    who = _console_user(request)
    people = await run_in_threadpool(services(request).engine.persons)
    return _page(request, "gallery.html", who, persons=people)


@router.post("/console/gallery/access")
async def gallery_access(request: Request):
    form = await read_form(request)
    who = require(request, form, admin=True)
    name, allowed = str(form.get("name", "")), form.get("allowed") == "1"
    svc = services(request)
    await run_in_threadpool(svc.engine.set_access, name, allowed, None)
    svc.admin_log.record(who_name(who), "allow" if allowed else "deny", person=name, via="console")
    return RedirectResponse("/console/gallery", status_code=303)


@router.post("/console/gallery/remove")
async def gallery_remove(request: Request):
    form = await read_form(request)
    who = require(request, form, admin=True)
    name = str(form.get("name", ""))
    svc = services(request)
    removed = await run_in_threadpool(svc.engine.remove, name)
    svc.admin_log.record(who_name(who), "remove", person=name, via="console", detail={"embeddings": removed})
    return RedirectResponse("/console/gallery", status_code=303)


@router.get("/console/audit")
async def audit(request: Request, kind: str = "", person: str = ""):
    who = _console_user(request)
    log = services(request).admin_log
    rows = await run_in_threadpool(log.records, kind or None, person or None, 500)
    ok, detail = await run_in_threadpool(log.verify)
    return _page(request, "audit.html", who, records=rows, kind=kind, person=person, verified=ok,
                 verify_detail=detail, kinds=("", "decision", "alarm", "recovery", "hook", "start", "stop", "admin"))


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)
