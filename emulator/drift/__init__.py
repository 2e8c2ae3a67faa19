"""The drift check: how far the real API (or any target) is from the emulator and the contract.

Two layers run against the target, paced under its rate limit:

- conformance: schemathesis fuzzes the target with the contract and all of its checks;
- differential: a fixed, ordered set of probe requests goes to the target and to an emulator, and
  the answers are compared (`comparison.py`, which sends nothing) by status, error code, the
  headers that matter, JSON shape and meaning.

What both layers find is grouped by cause (`grouping.py`): one report row per cause, however many
probes it was seen in.

`8here-emulator drift --help` lists the options; `emulator.drift.command.run` is the entry point.
"""
