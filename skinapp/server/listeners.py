"""The API process's listeners: plain HTTP on loopback, and HTTPS on the LAN when it is on.

Both serve the one app object, so they share its state (tokens, pairing codes, the rate
limiter, stream slots). Only the loopback server runs the lifespan; the LAN server starts
once the lifespan is done, so a phone never reaches an app that is not ready. Requests of
the LAN server are marked in their scope (`lan.LanMark`), which is how the edges
(`skinapp.server.edges`) and the auth dependency tell a phone from a local front end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from skinapp.config import Settings
from skinapp.server import lan, tls

logger = logging.getLogger(__name__)


class HealthPollFilter(logging.Filter):
    """Drops the access-log line of a successful `GET /jobs/health` from this machine.

    The supervisor probes the API every 2 s and the dashboard polls health: ~43k lines a day
    that bury the requests an IT person looks for. Failed probes and every other request,
    health from another address included, are still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        client, method, path, _version, status = args
        local = str(client).startswith(("127.", "::1", "[::1]"))
        return not (local and method == "GET" and path == "/jobs/health" and status == 200)


class _QuietServer(uvicorn.Server):
    # serve_api handles the signals for both servers; uvicorn would re-raise them at exit.
    def capture_signals(self) -> Any:
        return contextlib.nullcontext()


def bind_lan_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listening now: a phone that connects before the app is ready waits in the backlog.
    sock.listen(128)
    return sock


def prepare_lan(settings: Settings) -> tuple[socket.socket, tls.Certificate, lan.LanInfo]:
    """Bind the LAN socket and make (or renew) the certificate for its address."""
    host = lan.lan_host(settings)
    names = lan.certificate_names(host)
    cert = tls.ensure_certificate(settings.resolved_data_dir, names)
    sock = bind_lan_socket(host, settings.lan_port)
    info = lan.LanInfo(
        host=host,
        port=int(sock.getsockname()[1]),
        fingerprint=cert.fingerprint,
        spki_sha256=cert.spki_sha256,
        names=tuple(dict.fromkeys([*names, *cert.names])),
    )
    return sock, cert, info


def _config(app: ASGIApp, settings: Settings, **kwargs: Any) -> uvicorn.Config:
    from skinapp.server.http_limits import uvicorn_options

    return uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=3,
        **uvicorn_options(settings),  # header and keep-alive timeouts, a connection cap
        **kwargs,
    )


def lan_config(app: ASGIApp, settings: Settings, cert: tls.Certificate) -> uvicorn.Config:
    return _config(
        lan.LanMark(app),
        settings,
        lifespan="off",
        ssl_certfile=str(cert.cert_path),
        ssl_keyfile=str(cert.key_path),
        # A phone must not choose the address the rate limiter and device list see.
        proxy_headers=False,
    )


async def _serve_both(main: uvicorn.Server, lan_server: uvicorn.Server | None, sock: Any) -> None:
    main_task = asyncio.create_task(main.serve())
    while not main.started and not main_task.done():
        await asyncio.sleep(0.05)
    tasks = {main_task}
    if lan_server is not None and not main_task.done():
        tasks.add(asyncio.create_task(lan_server.serve(sockets=[sock])))
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in (main, lan_server):
        if server is not None:
            server.should_exit = True
    await asyncio.gather(*tasks)


def _stop_on_signals(servers: list[uvicorn.Server]) -> None:
    # The handler only sets flags; each server's loop notices them and shuts down.
    def handler(signum: int, frame: object) -> None:
        del signum, frame
        for server in servers:
            server.should_exit = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (uvicorn[standard] brings it), as uvicorn's
    own `loop="auto"` would choose: its selector, timers and cross-thread wake-ups cost a
    fraction of asyncio's, on every request and every Redis reply."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def serve_api(
    make_app: Callable[[lan.LanInfo | None], ASGIApp], settings: Settings, host: str, port: int
) -> None:
    """Serve the app on loopback `host:port`, and on the LAN over HTTPS when `settings.lan`."""
    lan_server: uvicorn.Server | None = None
    sock: socket.socket | None = None
    info: lan.LanInfo | None = None
    lan.remove_lan_info(settings)
    if settings.lan:
        sock, cert, info = prepare_lan(settings)
    app = make_app(info)
    main = _QuietServer(_config(app, settings, host=host, port=port))
    if sock is not None and info is not None:
        lan_server = _QuietServer(lan_config(app, settings, cert))
        lan.write_lan_info(settings, info)
        logger.info("LAN listener on %s (certificate %s)", info.url, info.fingerprint)
    # after the configs: building one applies uvicorn's logging config
    logging.getLogger("uvicorn.access").addFilter(HealthPollFilter())
    _stop_on_signals([s for s in (main, lan_server) if s is not None])
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve_both(main, lan_server, sock))
    finally:
        if sock is not None:
            sock.close()
            lan.remove_lan_info(settings)
