"""Serve an ASGI app with uvicorn in the foreground, and say so once it listens and when it stops.

`serve` and `proxy` share it: each passes what to print as `on_listening` / `on_stopped`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True)
class Listening:
    """Where the server listens: the host it was given and the port it really bound."""

    host: str
    port: int

    @property
    def every_interface(self) -> bool:
        return self.host in WILDCARD_HOSTS

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def bound(self) -> str:
        """host:port as bound, e.g. 0.0.0.0:8080 or [::]:8080."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """A base URL a browser on this machine can open (a wildcard host becomes loopback)."""
        host = WILDCARD_HOSTS.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class _Server(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        on_listening: Callable[[Listening], None],
        on_stopped: Callable[[], None],
    ) -> None:
        super().__init__(config)
        self._on_listening = on_listening
        self._on_stopped = on_stopped

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # Said before the loop answers anything: whoever sees a response has seen this.
            bound = self.servers[0].sockets[0].getsockname()
            self._on_listening(Listening(self.config.host, int(bound[1])))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # Here rather than after run(): after a SIGTERM, uvicorn re-raises it once served out,
        # and the process ends there.
        self._on_stopped()


def serve_app(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    access_log: bool = False,
    on_listening: Callable[[Listening], None],
    on_stopped: Callable[[], None],
    http: Any = "auto",
    date_header: bool = True,
) -> None:
    """Serve until Ctrl-C or SIGTERM, draining requests in flight (up to 5 s). `http` is uvicorn's
    HTTP protocol (a name, or a class such as protocol.http_protocol's); no WebSocket is served.
    Without `date_header`, uvicorn adds no `Date` of its own (a proxy passes on its target's).
    uvicorn's access log (a line per request) is off unless `access_log`."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        server_header=False,
        date_header=date_header,
        timeout_graceful_shutdown=5,
        http=http,
        ws="none",
    )
    # uvicorn re-raises Ctrl-C once it has shut down cleanly: that is the way to stop, not an error.
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, on_listening, on_stopped).run()
