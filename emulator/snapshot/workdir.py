"""Where a snapshot keeps its progress, and how the finished fixture set reaches `DIR`.

Progress lives in `DIR/.snapshot/`: `state.json` (the target, the listing's ids, which links are
saved), the list pages, and one file per saved link. Every file is written whole to a temporary
name and renamed over the old one, so a run stopped at any moment (an error, Ctrl-C, a kill)
leaves either the old file or the new one, and `--resume` goes on from the last saved link.

The fixture files are built in a temporary folder inside `DIR` and renamed into place only when
all of them are written and read back, so a previous set in `DIR` is kept until the new one is
complete and `DIR` never holds a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORK_FOLDER = ".snapshot"
STATE_FORMAT = 1
# Ids that are safe file names on every file system (lower case: some ignore case); others hashed.
_SAFE_NAME = re.compile(r"[a-z0-9_-]{1,100}")


class StateError(Exception):
    """The work folder cannot be used as asked; the message says why and what to do."""


def write_atomically(path: Path, data: bytes, *, durable: bool = False) -> None:
    """`path` holds `data` whole, or what it held before: written aside, then renamed over it.

    A process stopped at any point (an error, Ctrl-C, a kill) leaves the old file or the new one.
    `durable` also waits for the disk (fsync, ~10 ms), so a power cut cannot leave an empty
    file: for the fixture files, not for progress, which a resume checks anyway."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    # O_EXCL: never through a file or link already there; 0o666 less the umask, as open() does.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def json_bytes(value: Any, *, for_people: bool = False) -> bytes:
    """UTF-8 JSON: one key a line `for_people`, else compact (it is written after every link,
    and json's C encoder serves only unindented JSON). A lone surrogate goes as a `\\u` escape."""
    options: dict[str, Any] = (
        {"indent": 1, "sort_keys": True} if for_people else {"separators": (",", ":")}
    )
    end = "\n" if for_people else ""
    try:
        return (json.dumps(value, ensure_ascii=False, **options) + end).encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(value, **options) + end).encode("ascii")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class State:
    """What a snapshot has done so far (the JSON of `state.json`)."""

    target: str
    client_id: str
    started_at: str
    contract_sha256: str
    total: int = 0
    page_offsets: list[int] = field(default_factory=list)
    listed: bool = False
    ids: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    requests: int = 0
    warnings: list[str] = field(default_factory=list)
    listed_differences: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "target": self.target,
            "clientId": self.client_id,
            "startedAt": self.started_at,
            "contractSha256": self.contract_sha256,
            "total": self.total,
            "pageOffsets": self.page_offsets,
            "listed": self.listed,
            "ids": self.ids,
            "saved": self.saved,
            "missing": self.missing,
            "requests": self.requests,
            "warnings": self.warnings,
            "listedDifferences": self.listed_differences,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> State:
        if raw.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown state format {raw.get('format')!r}")
        return cls(
            target=str(raw["target"]),
            client_id=str(raw["clientId"]),
            started_at=str(raw["startedAt"]),
            contract_sha256=str(raw["contractSha256"]),
            total=int(raw["total"]),
            page_offsets=[int(offset) for offset in raw["pageOffsets"]],
            listed=bool(raw["listed"]),
            ids=[str(link_id) for link_id in raw["ids"]],
            saved=[str(link_id) for link_id in raw["saved"]],
            missing=[str(link_id) for link_id in raw["missing"]],
            requests=int(raw["requests"]),
            warnings=[str(warning) for warning in raw["warnings"]],
            listed_differences=[str(link) for link in raw["listedDifferences"]],
        )


class WorkFolder:
    """`DIR/.snapshot/`: the state, the pages and the saved links of an unfinished snapshot."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / WORK_FOLDER
        self.state_path = self.path / "state.json"

    def exists(self) -> bool:
        return self.state_path.is_file()

    def load(self) -> State:
        try:
            return State.from_json(json.loads(self.state_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"{self.state_path} cannot be read ({exc}); delete {self.path} to start over"
            ) from None

    def create(self) -> None:
        """Make the folders (the first write of a run that starts afresh)."""
        (self.path / "pages").mkdir(parents=True, exist_ok=True)
        (self.path / "links").mkdir(exist_ok=True)

    def save_state(self, state: State) -> None:
        write_atomically(self.state_path, json_bytes(state.to_json()))

    def save_page(self, offset: int, page: Any) -> None:
        write_atomically(self.path / "pages" / f"{offset}.json", json_bytes(page))

    def page(self, offset: int) -> Any:
        return json.loads((self.path / "pages" / f"{offset}.json").read_text(encoding="utf-8"))

    def save_link(self, link_id: str, record: Mapping[str, Any]) -> None:
        """The link's sample-set record."""
        write_atomically(self._link_path(link_id), json_bytes(record))

    def has_link(self, link_id: str) -> bool:
        """The link's file is there and whole (a power cut may have emptied it)."""
        try:
            return isinstance(json.loads(self._link_path(link_id).read_text("utf-8")), dict)
        except (OSError, ValueError):
            return False

    def links(self, ids: list[str]) -> Iterator[dict[str, Any]]:
        """The saved records of `ids`, in that order."""
        for link_id in ids:
            record: dict[str, Any] = json.loads(self._link_path(link_id).read_text("utf-8"))
            yield record

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _link_path(self, link_id: str) -> Path:
        name = link_id if _SAFE_NAME.fullmatch(link_id) else sha256_of(link_id.encode())
        return self.path / "links" / f"{name}.json"


def publish(out: Path, files: Mapping[str, bytes], check: Callable[[Path], None]) -> None:
    """Write `files` into a temporary folder in `out`, `check` that folder (it raises when the
    set would not serve), then rename each file into place in the order given (the manifest
    last: it describes the others)."""
    staging = Path(tempfile.mkdtemp(prefix=".snapshot-new-", dir=out))
    try:
        for name, data in files.items():
            write_atomically(staging / name, data, durable=True)
        check(staging)
        for name in files:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
