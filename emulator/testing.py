"""EmulatorServer: the emulator served by uvicorn in a background thread on a free port."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

from emulator.settings import Settings

_START_TIMEOUT_SECONDS = 10.0


class EmulatorServer:
    """Start with `start()` (or `with EmulatorServer() as server:`); `server.url` is its base URL.

    The socket is bound before uvicorn starts, so the port is known and free; `app` is the
    Starlette application, so tests can reach `app.state.emulator` directly.
    """

    def __init__(self, settings: Settings | None = None, host: str = "127.0.0.1") -> None:
        from emulator.app import create_app

        self.settings = settings or Settings()
        self.host = host
        self.app = create_app(self.settings)
        self._server: object | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        import uvicorn

        # IPPROTO_TCP explicitly: with protocol 0 asyncio leaves Nagle on for accepted
        # connections, and each keep-alive request waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", server_header=False, access_log=False
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="8here-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=_START_TIMEOUT_SECONDS)
        self._server = self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
