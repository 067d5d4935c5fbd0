"""Stack sub-commands: `serve`, `status`, `worker`, `token`, `doctor`, and the hidden child
entry points `_api` and `_flower` that the supervisor starts.

Heavy imports (Celery, FastAPI, uvicorn, the stack) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from skinapp.config import Settings, load_settings

ROLES = ("admin", "device")


def register(sub: Any) -> None:
    _register_serve(sub)
    _register_status(sub)
    _register_worker(sub)
    _register_token(sub)
    _register_doctor(sub)
    _register_children(sub)


# --- serve -------------------------------------------------------------------------------
def _register_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the local stack without a GUI, until Ctrl-C")
    p.add_argument("--host", help="address the API binds to (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="API port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--lan",
        action="store_true",
        help="also serve phones on the clinic LAN, over HTTPS (SKINAPP_LAN_HOST, SKINAPP_LAN_PORT)",
    )
    p.add_argument("--flower", action="store_true", help="also start the Flower dashboard")
    p.set_defaults(handler=cmd_serve)


def _serve_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.lan:
        overrides["lan"] = True  # loopback stays plain HTTP; the LAN listener is HTTPS only
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    return load_settings(**overrides)


def _print_stage(stage: str, message: str) -> None:
    print(f"[{stage}] {message}", flush=True)


def _lan_address() -> str:
    from skinapp.server.lan import machine_lan_address

    return machine_lan_address()


def cmd_serve(args: argparse.Namespace) -> int:
    from skinapp.stack import Stack

    settings = _serve_settings(args)
    stack = Stack(settings, flower=args.flower, on_stage=_print_stage)
    stop = threading.Event()
    # While starting, Ctrl-C or SIGTERM interrupt start(), which stops what it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack.start()
    _stop_on_signals(stop)
    try:
        _announce(stack, settings)
        stack.supervise(stop)
    finally:
        print("stopping the stack...", flush=True)
        stack.stop()
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    # Handlers only set the event; the supervise loop notices it and the finally stops.
    def handler(signum: int, frame: object) -> None:
        del signum, frame
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _announce(stack: Any, settings: Settings) -> None:
    from skinapp.stack.runtime import admin_token_file

    print(f"skinapp API: {stack.api_url}  (docs: {stack.api_url}/docs)")
    print(f"admin token: {admin_token_file(settings)}  (mode 0600; skinapp token create)")
    print(f"logs: {settings.log_dir}")
    _announce_lan(settings)
    if settings.host in {"0.0.0.0", "::"}:
        lan = f"http://{_lan_address()}:{stack.api_url.rsplit(':', 1)[1]}"
        print("!" * 72)
        print(f"!! LAN MODE: the API is reachable from other machines at {lan}")
        print("!! Anyone on this network can reach it; only paired tokens get in.")
        print("!" * 72)
    if "flower" in stack.children:
        print(f"Flower: {stack.children['flower'].local_url}")
    print("Ctrl-C stops everything.", flush=True)


def _announce_lan(settings: Settings) -> None:
    from skinapp.server.lan import read_lan_info

    info = read_lan_info(settings) if settings.lan else None
    if info is None:
        return
    print(f"phones on the clinic LAN: {info.url}/phone  (HTTPS, self-signed certificate)")
    print(f"certificate SHA-256 fingerprint: {info.fingerprint}")
    print("pair a phone: skinapp token pair   (the phone shows this fingerprint to compare)")


# --- status ------------------------------------------------------------------------------
def _register_status(sub: Any) -> None:
    p = sub.add_parser("status", help="health of the running stack, as the API reports it")
    p.add_argument("--json", action="store_true", help="print the health body as JSON")
    p.set_defaults(handler=cmd_status)


def _connection(settings: Settings) -> tuple[str, str]:
    from skinapp.stack import local_connection

    if settings.api_url:
        return settings.api_url, settings.api_token or ""
    return local_connection(settings)


def cmd_status(args: argparse.Namespace) -> int:
    from skinapp.client import Client

    api_url, token = _connection(load_settings())
    with Client(api_url, token) as client:
        body = client.health()
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        _print_health(api_url, body)
    return 0 if body.get("status") == "healthy" else 1


def _print_health(api_url: str, body: dict[str, Any]) -> None:
    print(f"{api_url}: {body.get('status')}")
    print(f"  redis connected: {body.get('redis_connected')}")
    print(f"  workers ({body.get('workers_available')}): {', '.join(body.get('workers') or [])}")
    queues = body.get("queues") or {}
    print("  queues: " + ", ".join(f"{k}={v}" for k, v in queues.items()))
    if body.get("warning"):
        print(f"  warning: {body['warning']}")


# --- worker ------------------------------------------------------------------------------
def _register_worker(sub: Any) -> None:
    p = sub.add_parser("worker", help="a Celery worker that joins any stack's broker")
    p.add_argument("--queues", default="analysis,default,batch", help="comma-separated queues")
    p.add_argument("--broker", help="broker URL (default: CELERY_BROKER_URL / REDIS_URL)")
    p.add_argument("--concurrency", type=int, help="pool size (default CELERY_WORKER_CONCURRENCY)")
    p.add_argument("--hostname", help="node name (default worker-<pid>@<host>)")
    p.add_argument("--loglevel", default="INFO", help="Celery log level")
    p.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from skinapp.errors import ConfigError
    from skinapp.tasks.worker import run_worker

    overrides: dict[str, Any] = {}
    if args.broker:
        overrides = {"celery_broker_url": args.broker, "redis_url": args.broker}
    settings = load_settings(**overrides)
    if not settings.external_broker:
        raise ConfigError("no broker: give --broker URL or set CELERY_BROKER_URL / REDIS_URL")
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    concurrency = args.concurrency or settings.celery_worker_concurrency
    hostname = args.hostname or f"worker-{os.getpid()}@{socket.gethostname()}"
    run_worker(
        settings, queues=queues, concurrency=concurrency, hostname=hostname, loglevel=args.loglevel
    )
    return 0


# --- token -------------------------------------------------------------------------------
def _register_token(sub: Any) -> None:
    p = sub.add_parser("token", help="API tokens: create, list, revoke, pair")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = tsub.add_parser("create", help="make a token (shown once)")
    create.add_argument("--name", default="device", help="who or what the token is for")
    create.add_argument("--role", choices=ROLES, default="device")
    create.set_defaults(handler=cmd_token_create)
    tsub.add_parser("list", help="tokens (never their secrets)").set_defaults(
        handler=cmd_token_list
    )
    revoke = tsub.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    revoke.set_defaults(handler=cmd_token_revoke)
    pair = tsub.add_parser("pair", help="pair a phone: a device token and its /phone link")
    pair.add_argument("--name", default="phone", help="whose phone or tablet")
    pair.set_defaults(handler=cmd_token_pair)


def _token_store() -> Any:
    from skinapp.server.tokens import TokenStore
    from skinapp.stack.runtime import local_redis_url
    from skinapp.tasks.connection import redis_client

    return TokenStore(redis_client(local_redis_url(load_settings())))


def cmd_token_create(args: argparse.Namespace) -> int:
    token, record = _token_store().create(args.name, args.role)
    print(token)
    print(
        f"id {_field(record, 'id')}, role {args.role}, name {args.name} (shown once)",
        file=sys.stderr,
    )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    del args
    for record in _token_store().list():
        created = _field(record, "created_at")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(created))) if created else "?"
        print(
            f"{_field(record, 'id')}  {_field(record, 'role'):<6}  {when}  {_field(record, 'name')}"
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from skinapp.errors import InvalidRequest

    if _token_store().revoke(args.token_id) is False:
        raise InvalidRequest(f"no token with id {args.token_id}")
    print(f"revoked {args.token_id}")
    return 0


def cmd_token_pair(args: argparse.Namespace) -> int:
    from skinapp.commands import pairing

    settings = load_settings()
    info = pairing.read_pairing_target(settings)
    code = pairing.pairing_store(_token_store()).create(args.name)
    url = pairing.pairing_link_for(info, code.code)
    qr = pairing.terminal_qr(url)  # None without the optional `qrcode` package
    if qr:
        print(qr)
    print(f"Open on the phone: {url}")
    print(f"or open {info.base_url}/phone and type the code: {code.code}")
    if info.fingerprint:
        print(f"certificate SHA-256 fingerprint: {info.fingerprint}")
    minutes = max(1, round((code.expires_at - time.time()) / 60))
    print(f"The code works once, for {minutes} minutes.", file=sys.stderr)
    for line in info.warnings:
        print(line, file=sys.stderr)
    print("paired devices: skinapp token list; unpair: skinapp token revoke ID", file=sys.stderr)
    return 0


def _field(record: Any, name: str) -> Any:
    if isinstance(record, dict):
        return record.get(name, "")
    return getattr(record, name, "")


# --- doctor ------------------------------------------------------------------------------
def _register_doctor(sub: Any) -> None:
    p = sub.add_parser("doctor", help="what this machine has: device, server, ports, models")
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from skinapp.stack.doctor import run_checks

    del args
    failed = False
    for check in run_checks(load_settings()):
        print(f"{check.level:<5} {check.label}: {check.detail}")
        failed = failed or check.level == "FAIL"
    return 1 if failed else 0


# --- hidden child entry points -----------------------------------------------------------
def _register_children(sub: Any) -> None:
    # No help= so argparse leaves them out of `skinapp --help`: only the supervisor runs them.
    api = sub.add_parser("_api")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, required=True)
    api.set_defaults(handler=cmd_api)
    flower = sub.add_parser("_flower")
    flower.add_argument("--host", default="127.0.0.1")
    flower.add_argument("--port", type=int, required=True)
    flower.set_defaults(handler=cmd_flower)


def cmd_api(args: argparse.Namespace) -> int:
    from skinapp.server.app import create_app
    from skinapp.server.listeners import serve_api

    settings = load_settings()
    # The app object, not a "module:app" string: the frozen bundle cannot import by string.
    # With SKINAPP_LAN on, the same app also listens on the LAN over HTTPS.
    serve_api(lambda lan_info: create_app(settings, lan_info), settings, args.host, args.port)
    return 0


def cmd_flower(args: argparse.Namespace) -> int:
    from skinapp.tasks.celery_app import configure

    configure(load_settings()).start(["flower", f"--port={args.port}", f"--address={args.host}"])
    return 0
