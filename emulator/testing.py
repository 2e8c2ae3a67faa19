"""Serving from a thread: any ASGI app (ThreadedServer), or the emulator (EmulatorServer)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

from emulator.settings import Settings

_START_TIMEOUT_SECONDS = 10.0


class ThreadedServer:
    """An ASGI app served by uvicorn in a daemon thread on a free port of `host`.

    `start()` (or `with ThreadedServer(app) as server:`) returns once it accepts connections;
    `server.url` is its base URL."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        name: str = "asgi-server",
        http: Any = "auto",
        *,
        date_header: bool = True,
    ) -> None:
        """`http` is uvicorn's: a protocol name or class; without `date_header`, uvicorn adds no
        `Date` of its own (a proxy passes on its target's)."""
        self.app = app
        self.host = host
        self.name = name
        self.http = http
        self.date_header = date_header
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedServer:
        import uvicorn

        # IPPROTO_TCP explicitly: with protocol 0 asyncio leaves Nagle on for accepted
        # connections, and each keep-alive request waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="on",
            server_header=False,
            access_log=False,
            http=self.http,
            ws="none",
            date_header=self.date_header,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT_SECONDS)
        self._server = self._thread = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmulatorServer(ThreadedServer):
    """The emulator, built from `settings`, served from a thread. `app` is the Starlette
    application, so tests can reach `app.state.emulator` directly."""

    def __init__(self, settings: Settings | None = None, host: str = "127.0.0.1") -> None:
        from emulator.app import create_app
        from emulator.protocol import http_protocol

        self.settings = settings or Settings()
        super().__init__(
            create_app(self.settings),
            host,
            name="8here-emulator",
            http=http_protocol(self.settings),
        )

    def start(self) -> EmulatorServer:
        super().start()
        return self

    def __enter__(self) -> EmulatorServer:
        return self.start()
