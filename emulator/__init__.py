"""8here-emulator: a local, deterministic stand-in for the 8here Open Links API."""

__version__ = "0.1.0"
