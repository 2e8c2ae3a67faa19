"""The yardstick of `bench_http.py`: bare Starlette routes serving fixed bytes.

`python benchmarks/baseline_app.py --port P` serves, with `uvicorn.run` and the settings that
`8here-emulator serve` passes (emulator/serving.py: host, port, log level, no access log, no
`server` header, a 5 s graceful shutdown, `loop` "auto"), by default with the emulator's own HTTP
protocol class (emulator/protocol.py: its head bounds and request timeout), so that the two
servers differ in the app only; `--protocol uvicorn` gives uvicorn's own ("auto": httptools when
installed). Routes, each a bare Starlette `Route` answering a fixed `Response`:

- `/` and `/health`: a tiny JSON body (`{"status":"ok"}`), the size of the emulator's health;
- `/bytes/NAME` for each `--body NAME=FILE`: FILE's bytes, as `application/json` ("the same
  bytes": bench_http.py captures the emulator's list page and detail body into files).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"status":"ok"}'


def fixed(body: bytes) -> Any:
    async def answer(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return answer


def build(bodies: dict[str, bytes]) -> Starlette:
    routes = [Route("/", fixed(BODY), methods=["GET"]), Route("/health", fixed(BODY))]
    routes += [Route(f"/bytes/{name}", fixed(body)) for name, body in bodies.items()]
    return Starlette(routes=routes)


app = build({})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--body", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--protocol", choices=("emulator", "uvicorn"), default="emulator")
    args = parser.parse_args()
    bodies = {}
    for given in args.body:
        name, _, path = given.partition("=")
        bodies[name] = Path(path).read_bytes()
    http: Any = "auto"
    if args.protocol == "emulator":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from emulator.protocol import http_protocol
        from emulator.settings import Settings

        http = http_protocol(Settings())
    # Keep in step with emulator.serving.serve_app.
    uvicorn.run(
        build(bodies),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        http=http,
        ws="none",
    )


if __name__ == "__main__":
    main()
