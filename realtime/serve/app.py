"""The ASGI application of ``rtv serve``: DeepStack-compatible routes, the native API, the console.

:func:`create_app` takes the opened parts (models, accounts, admin log) so tests can build it around a temporary
gallery; :mod:`realtime.serve.server` runs it under uvicorn.
"""

from __future__ import annotations

from typing import Any

from realtime.serve.accounts import Accounts
from realtime.serve.adminlog import AdminLog
from realtime.serve.deps import ServeSettings, Services
from realtime.serve.engine import Engine
from realtime.serve.security import AuthError, LoginLimiter, SecurityHeaders
from realtime.serve.uploads import UploadError


def create_app(engine: Engine, accounts: Accounts, admin_log: AdminLog, settings: ServeSettings = ServeSettings(),
               doors: Any = None):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from realtime.errors import ConfigError, EnrollmentError, GalleryError, ModelError, RtvError

    app = FastAPI(title="rtv serve", version="1", docs_url=None, redoc_url=None,
                  description="DeepStack-compatible vision API, rtv's native API and the door console.")
    app.state.services = Services(engine, accounts, admin_log, settings, LoginLimiter(), doors)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"success": False, "error": message, "code": status}, status_code=status)

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, exc: UploadError):
        return error(exc.status, exc.message)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError):
        if exc.status == 401 and request.url.path.startswith("/console") and request.method == "GET":
            from fastapi.responses import RedirectResponse

            return RedirectResponse("/console/login", status_code=303)
        return error(exc.status, exc.message)

    @app.exception_handler(RtvError)
    async def _rtv_error(request: Request, exc: RtvError):
        status = 500 if isinstance(exc, ModelError) else 400
        if isinstance(exc, GalleryError) and "no person named" in str(exc):
            status = 404
        if isinstance(exc, (EnrollmentError, ConfigError)):
            status = 400
        return error(status, str(exc))

    from realtime.serve import api, console, deepstack

    app.state.routers = (deepstack.router, api.router, console.router)  # every route of the service
    for router in app.state.routers:
        app.include_router(router)
    console.mount_static(app)
    app.add_middleware(SecurityHeaders, max_body_bytes=settings.max_upload_bytes * 2 + 65536, tls=settings.tls)
    return app


