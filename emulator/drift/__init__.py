"""The drift check: how far the real API (or any target) is from the emulator and the contract.

Two layers run against the target, paced under its rate limit:

- conformance: schemathesis fuzzes the target with the contract and all of its checks;
- differential: a fixed, ordered set of probe requests goes to the target and to an emulator, and
  the answers are compared by status, error code, the headers that matter, JSON shape and meaning.

`8here-emulator drift --help` lists the options; `emulator.drift.command.run` is the entry point.
"""
