"""Run the service under uvicorn: open the models once, start the doors, serve until SIGTERM/SIGINT, then stop
the doors (each writes its stop record) and close the models."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from realtime.config import Config
from realtime.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def build(config: Config, accounts_path: Path, settings, door_specs=(), events=None, loop_doors: bool = False):
    """``(app, engine, doors)``: everything opened, nothing served yet (the caller closes engine and doors).
    ``events``: a :class:`realtime.serve.events.EventsOut` for the doors' records (closed with the doors)."""
    from realtime.serve.accounts import Accounts
    from realtime.serve.adminlog import AdminLog
    from realtime.serve.app import create_app
    from realtime.serve.engine import Engine

    accounts = Accounts(accounts_path)
    engine = Engine.open(config)
    doors = None
    try:
        if door_specs:
            from realtime.serve.doors import DoorRunner

            doors = DoorRunner(config, door_specs, loop=loop_doors, events=events)
            doors.start()
        app = create_app(engine, accounts, AdminLog(config, doors.audit_paths if doors else None), settings,
                         doors)
    except BaseException:
        if doors is not None:
            doors.stop()
        engine.close()
        raise
    return app, engine, doors


def serve(config: Config, accounts_path: Path, settings, door_specs=(), tls: TlsFiles | None = None,
          proxy_headers: bool = False, echo=print, events=None, loop_doors: bool = False) -> int:
    import uvicorn

    if tls is not None:
        for path in (tls.cert, tls.key):
            if not Path(path).is_file():
                raise ConfigError(f"TLS file not found: {path}")
    app, engine, doors = build(config, accounts_path, settings, door_specs, events, loop_doors)
    try:
        server = uvicorn.Server(uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
            ssl_certfile=str(tls.cert) if tls else None, ssl_keyfile=str(tls.key) if tls else None,
            proxy_headers=proxy_headers, forwarded_allow_ips="127.0.0.1" if proxy_headers else None,
            timeout_graceful_shutdown=10))
        scheme = "https" if tls else "http"
        echo(f"rtv serve: listening on {scheme}://{settings.host}:{settings.port}/ (console at /console/, "
             f"DeepStack API at /v1/vision/, API at /api/v1/)")
        # uvicorn handles SIGTERM and SIGINT: stops accepting, finishes the requests in flight, then re-raises the
        # signal, so the command ends like every other one (exit 128 + the signal's number: 143 for SIGTERM)
        server.run()
    finally:
        if doors is not None:
            doors.stop()  # each door writes its stop record
        engine.close()
        echo("rtv serve: stopped")
    return 0
