"""`8here-emulator proxy`: the emulator in front of a real target, checking every exchange.

Every request under `/api/` goes to the target, and its answer comes back unchanged (`forward.py`)
with `X-Emulator-Check`. On the way, the exchange is checked (`checks.py`): the request and the
answer against the contract, and the answer's shape against what the emulator would have said to
the same request on a throwaway copy of its state (`shadow.py`), with the drift check's
comparison. Differences are grouped for `GET /_emulator/checks` (`log.py`), and exchanges can be
recorded to a JSON Lines file with every secret redacted (`record.py`). `app.py` puts it together
on the same request layer as `serve`.
"""
