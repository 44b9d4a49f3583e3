"""Running the app with uvicorn: in the foreground (``sovereign serve``) or in a thread.

The server has no authentication and no TLS. It binds to loopback unless told otherwise; bound
elsewhere, anyone who can reach the port can query the model: put it behind a reverse proxy that
authenticates, or keep it on loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from sovereign_ai.errors import ConfigError

__all__ = ["is_loopback", "run_server", "running_server"]

_log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config(app: FastAPI, *, host: str, port: int) -> uvicorn.Config:
    if not is_loopback(host):
        _log.warning(
            "Serving on %s: the server has no authentication or TLS; anyone who reaches the "
            "port can query the model. Put it behind an authenticating reverse proxy.",
            host,
        )
    # h11 and asyncio: pure Python, same behaviour everywhere; no access log per request.
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        http="h11", loop="asyncio", timeout_graceful_shutdown=5,
    )  # fmt: skip


def run_server(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``app`` until interrupted (Ctrl-C or SIGTERM)."""
    uvicorn.Server(_config(app, host=host, port=port)).run()


@contextmanager
def running_server(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 20.0
) -> Iterator[str]:
    """Serve ``app`` in a thread; yield its base URL once it accepts connections, then stop it.

    Parameters
    ----------
    port
        0 picks a free port.

    Raises
    ------
    ConfigError
        If the server did not start within ``start_timeout_s`` (e.g. the port is taken).
    """
    server = uvicorn.Server(_config(app, host=host, port=port))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            raise ConfigError(f"The server did not start on {host}:{port}.")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
