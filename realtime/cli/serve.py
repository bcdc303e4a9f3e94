"""``rtv serve``: the HTTP service (DeepStack-compatible API, native API, console, doors); ``rtv serve adduser``
and ``rtv serve apikey`` manage its accounts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realtime.cli.args import int_range

DEFAULT_ACCOUNTS = "serve_accounts.sqlite"


def _accounts(args):
    from realtime.serve.accounts import Accounts

    return Accounts(Path(args.accounts))


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        from realtime.errors import ConfigError

        raise ConfigError("the two passwords differ; nothing was changed")
    return first


def cmd_serve(args: argparse.Namespace) -> int:
    command = args.serve_command
    if command == "adduser":
        _accounts(args).add_user(args.name, _password(args))
        print(f"administrator {args.name!r} added to {args.accounts}")
        return 0
    if command == "apikey":
        accounts = _accounts(args)
        if args.key_command == "add":
            secret = accounts.add_key(args.name, args.role)
            print(secret)
            print(f"API key {args.name!r} ({args.role}) added; the key above is shown only once", file=sys.stderr)
        elif args.key_command == "remove":
            found = accounts.remove_key(args.name)
            print(f"API key {args.name!r} " + ("removed" if found else "not found"))
            return 0 if found else 1
        else:
            for key in accounts.keys():
                print(f"{key.name}\t{key.role}")
        return 0
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from realtime.cli.args import load_from_args
    from realtime.errors import ConfigError
    from realtime.serve.deps import ServeSettings
    from realtime.serve.server import TlsFiles, serve

    config = load_from_args(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    doors = []
    for spec in args.door or ():
        door_id, sep, source = spec.partition("=")
        if not sep or not door_id or not source:
            raise ConfigError(f"--door {spec!r}: use ID=SOURCE (a camera index, file or rtsp:// URL)")
        doors.append((door_id, source))
    settings = ServeSettings(host=args.host, port=args.port, tls=bool(args.tls_cert),
                             max_upload_bytes=args.max_upload_mb * 2**20, open_read=not args.require_key)
    tls = TlsFiles(Path(args.tls_cert), Path(args.tls_key)) if args.tls_cert else None
    events = _events(args) if doors else None
    return serve(config, Path(args.accounts), settings, tuple(doors), tls=tls, proxy_headers=args.proxy_headers,
                 echo=lambda text: print(text, file=sys.stderr, flush=True), events=events,
                 loop_doors=args.door_loop)


def _events(args):
    from realtime.errors import ConfigError
    from realtime.serve.events import EventsOut, MqttSettings

    mqtt = None
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":") if ":" in args.mqtt else (args.mqtt, "", "1883")
        if not port.isdigit() or not host:
            raise ConfigError(f"--mqtt {args.mqtt!r}: use HOST or HOST:PORT")
        import os

        mqtt = MqttSettings(host, int(port), args.mqtt_prefix, os.environ.get("RTV_MQTT_USERNAME", ""),
                            os.environ.get("RTV_MQTT_PASSWORD", ""))
    hooks = tuple(args.webhook or ())
    for url in hooks:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--webhook {url!r}: must be an http:// or https:// URL")
    secret = b""
    if hooks:
        if not args.webhook_secret_file:
            raise ConfigError("--webhook needs --webhook-secret-file (the shared secret that signs each event)")
        secret = Path(args.webhook_secret_file).read_bytes().strip()
        if len(secret) < 16:
            raise ConfigError(f"{args.webhook_secret_file}: the webhook secret must be at least 16 bytes")
    if mqtt is None and not hooks:
        return None
    return EventsOut(mqtt, hooks, secret)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP service: DeepStack-compatible API, REST API, door console",
                       description="Serve the DeepStack/CodeProject.AI-compatible API (/v1/vision/...), rtv's API "
                                   "(/api/v1/..., schema at /openapi.json) and the administrators' console "
                                   "(/console/), sharing one set of models. Listens on 127.0.0.1 unless --host says "
                                   "otherwise; stops cleanly on SIGTERM. Make the first administrator with "
                                   "'rtv serve adduser NAME' (there is no default account).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int_range(1, 65535), default=8000, help="port (default 8000)")
    p.add_argument("--accounts", default=DEFAULT_ACCOUNTS,
                   help=f"administrators and API keys file (default ./{DEFAULT_ACCOUNTS})")
    p.add_argument("--door", action="append", metavar="ID=SOURCE",
                   help="run a door on this source (camera index, video file, rtsp:// URL); repeatable")
    p.add_argument("--door-loop", action="store_true",
                   help="start a door's video file again at its end (a stand-in camera for trials)")
    p.add_argument("--mqtt", metavar="HOST[:PORT]", help="publish door events to this MQTT broker "
                   "(credentials from RTV_MQTT_USERNAME / RTV_MQTT_PASSWORD)")
    p.add_argument("--mqtt-prefix", default="rtv", help="MQTT topic prefix (default rtv)")
    p.add_argument("--webhook", action="append", metavar="URL", help="POST each door event here, signed; repeatable")
    p.add_argument("--webhook-secret-file", help="file holding the webhook signing secret (at least 16 bytes)")
    p.add_argument("--tls-cert", help="PEM certificate: serve HTTPS (else put a reverse proxy in front)")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--proxy-headers", action="store_true",
                   help="trust X-Forwarded-Proto/For from a reverse proxy on 127.0.0.1")
    p.add_argument("--require-key", action="store_true",
                   help="detection and recognition need an API key even while none exists")
    p.add_argument("--max-upload-mb", type=int_range(1, 1024), default=20, help="largest image upload (default 20)")
    p.set_defaults(func=cmd_serve, serve_command=None)
    ssub = p.add_subparsers(dest="serve_command", metavar="ACTION")
    q = ssub.add_parser("adduser", help="add an administrator (asks for the password)")
    q.add_argument("name")
    q.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    q.add_argument("--accounts", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    q = ssub.add_parser("apikey", help="add, list or remove API keys (read-only or admin)")
    ksub = q.add_subparsers(dest="key_command", metavar="KEYACTION")
    ksub.required = True
    k = ksub.add_parser("add", help="make a key; prints it once")
    k.add_argument("name")
    k.add_argument("--role", choices=("read", "admin"), default="read")
    k.add_argument("--accounts", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    k = ksub.add_parser("list", help="key names and roles")
    k.add_argument("--accounts", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    k = ksub.add_parser("remove", help="revoke a key")
    k.add_argument("name")
    k.add_argument("--accounts", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def cmd_bench_serve(args: argparse.Namespace) -> int:
    from realtime.cli.args import guard_outputs, load_from_args
    from realtime.serve.bench import run_bench

    config = load_from_args(args)
    if args.json:
        guard_outputs({"--json": args.json}, config, overwrite=args.overwrite)
    report = run_bench(config, clients=args.clients, seconds=args.seconds, door=not args.no_door)
    if args.json:
        from realtime.io.paths import write_json_atomic

        write_json_atomic(args.json, report)
        print(f"wrote {args.json}")
    return 0


def register_bench(bench: argparse._SubParsersAction) -> None:
    from realtime.cli.args import add_overwrite, float_range

    p = bench.add_parser("serve", help="the HTTP service: requests/s and p50/p95 ms under N concurrent clients",
                         description="Starts the service in this process (temporary gallery and accounts) and posts "
                                     "a 640x480 JPEG to /v1/vision/detection, then /v1/vision/face/recognize, from "
                                     "N client threads for --seconds each, while a door runs at 15 FPS on a "
                                     "generated clip (--no-door to leave it out). Counts every error.")
    p.add_argument("--clients", type=int_range(1, 256), default=4, help="concurrent clients (default 4)")
    p.add_argument("--seconds", type=float_range(0.5, 3600.0), default=10.0,
                   help="seconds per route (default 10)")
    p.add_argument("--no-door", action="store_true", help="no door beside the requests")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    add_overwrite(p)
    p.set_defaults(func=cmd_bench_serve)
