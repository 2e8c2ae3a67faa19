"""A sync httpx transport over an ASGI app in this process, for `emulator_app.sync_transport()`.

httpx's own ASGITransport is async only. This one hands each request to an event loop running
in a thread of its own, as a server would run it: the caller's read timeout is honoured (the
request goes on in the background, as on a server whose client gave up), and the test's thread
stays free to reset the emulator meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import Any

import httpx

_STOP_TIMEOUT_SECONDS = 5.0


class LoopThread:
    """An asyncio event loop in a daemon thread, until `stop()`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="8here-emulator-in-process", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Cancel what still runs (a delayed request whose client gave up), then stop."""

        async def cancel_the_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        cancelled = asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            cancelled.result(_STOP_TIMEOUT_SECONDS)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=_STOP_TIMEOUT_SECONDS)
        if not self._thread.is_alive():
            self.loop.close()


class SyncASGITransport(httpx.BaseTransport):
    """Serves sync httpx requests with an ASGI app on a `LoopThread`. Closing it leaves the loop
    running: it belongs to whoever made it (the emulator handle)."""

    def __init__(self, app: Any, loop: LoopThread) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body as bytes, which ASGITransport can stream asynchronously
        call = asyncio.run_coroutine_threadsafe(self._send(request), self._loop.loop)
        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            status, headers, content = call.result(timeout)
        except concurrent.futures.TimeoutError:
            raise httpx.ReadTimeout(
                "the emulator did not answer in time", request=request
            ) from None
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), request=request
        )

    async def _send(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        response = await self._asgi.handle_async_request(request)
        content = await response.aread()
        return response.status_code, response.headers, content
