"""The yardstick of `bench_http.py`: one Starlette route returning a fixed small JSON.

`python benchmarks/baseline_app.py --port P` serves it with `uvicorn.run` and the same settings
that `8here-emulator serve` passes (emulator/serving.py: host, port, log level, no `server`
header, a 5 s graceful shutdown, every other option at uvicorn's default, so `loop` and `http`
are "auto": uvloop and httptools when they are installed, asyncio and h11 when not). Every figure
of the emulator is reported as a ratio to this endpoint's, measured in the same run on the same
core.
"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"status":"ok"}'


async def fixed(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/", fixed, methods=["GET"]), Route("/health", fixed)])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # Keep in step with emulator.serving.serve_app.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
