"""One snapshot run: a token, every list page at `limit=100`, every link's detail, a second look
at the first page, and the fixture set written into `DIR`, all paced under the rate limit.

The run goes through the drift check's request layer (`PacedSession`: pacing, the safety policy,
progress, 429s waited out by their `Retry-After`) and adds what a long copy needs: a 5xx or a
lost connection is retried a few times and then stops the run, which `--resume` continues from
the last saved link (see `workdir.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import requests

from emulator.clock import Clock, format_timestamp
from emulator.drift.contract import Contract
from emulator.drift.pacing import Pacer, Progress, Rate, format_duration, parse_retry_after
from emulator.drift.transport import (
    LINKS_PATH,
    MAX_RETRY_AFTER_SECONDS,
    TOKEN_REFRESH_SECONDS,
    PacedSession,
    SafetyPolicy,
    Side,
)
from emulator.registry import FixtureError, Registry
from emulator.sample_set import FILE_NAME as LINKS_FILE
from emulator.sample_set import (
    VERBATIM_KEYS,
    InvalidRecord,
    link_from_json,
    links_from_document,
    load_sample_set,
    render_sample_set,
)
from emulator.settings import Settings, default_fixtures_dir
from emulator.snapshot.records import (
    Mismatch,
    ShapeChecker,
    record_from_detail,
    summary_differences,
)
from emulator.snapshot.workdir import (
    State,
    StateError,
    WorkFolder,
    json_bytes,
    publish,
    sha256_of,
)

PAGE_SIZE = 100  # the most the API gives in one page
APPLICATIONS_FILE = "applications.json"
MANIFEST_FILE = "manifest.json"
# A 5xx or a lost connection is tried this many more times, waiting longer each time.
MAX_RETRIES = 3
_MIN_BACKOFF_SECONDS = 0.25
_MAX_LISTED_WARNINGS = 5

EXIT_OK, EXIT_SHAPE, EXIT_INCOMPLETE = 0, 1, 2


class Stopped(Exception):
    """The run stopped before the set was complete; what was saved stays, for `--resume`."""


class ShapeMismatch(Exception):
    """The target's answer does not have the contract's shape; nothing more is written."""


@dataclass(frozen=True)
class SnapshotOptions:
    base_url: str
    out: Path
    client_id: str
    client_secret: str
    rate: Rate | None
    contract_path: Path
    resume: bool = False
    dry_run: bool = False
    max_requests: int | None = None
    timeout: float = 30.0
    short_base: str = Settings.short_base
    stdout: TextIO | None = None
    progress: TextIO | None = None


@dataclass(frozen=True)
class Plan:
    """The requests a run will send, by kind, and how long they take at the pace."""

    tokens: int
    pages: int
    details: int
    rechecks: int
    interval: float

    @classmethod
    def make(cls, pages: int, details: int, rechecks: int, interval: float) -> Plan:
        """With as many token exchanges as a run this long needs (a token is refreshed before
        its hour is up)."""
        tokens = 1
        while True:
            plan = cls(tokens, pages, details, rechecks, interval)
            needed = 1 + int(plan.seconds // TOKEN_REFRESH_SECONDS)
            if needed <= tokens:
                return plan
            tokens = needed

    @property
    def requests(self) -> int:
        return self.tokens + self.pages + self.details + self.rechecks

    @property
    def seconds(self) -> float:
        return max(self.requests - 1, 0) * self.interval  # the first request goes at once

    def describe(self, rate: Rate | None) -> str:
        parts = [
            _count(self.tokens, "token exchange"),
            _count(self.pages, f"list page of {PAGE_SIZE}", f"list pages of {PAGE_SIZE}"),
            _count(self.details, "link detail"),
        ]
        if self.rechecks:
            parts.append("1 second look at the first page")
        pace = f"at {rate} (a request every {self.interval:.1f} s)" if rate else "unpaced"
        return (
            f"{self.requests} requests ({', '.join(parts)}), "
            f"about {format_duration(self.seconds)} {pace}"
        )


class Snapshot:
    def __init__(self, options: SnapshotOptions) -> None:
        self.options = options
        self.out = options.stdout
        pacer = Pacer(options.rate)
        self.interval = pacer.interval
        self.progress = Progress(options.progress, pacer.interval, label="snapshot")
        base_path = urlsplit(options.base_url).path.rstrip("/")
        self.session = PacedSession(
            pacer,
            SafetyPolicy(base_path=base_path),
            self.progress,
            timeout=options.timeout,
            max_requests=options.max_requests,
        )
        self.target = Side(
            "target", options.base_url, self.session, options.client_id, options.client_secret
        )
        self.work = WorkFolder(options.out)
        contract_bytes = options.contract_path.read_bytes()
        self.contract_sha256 = sha256_of(contract_bytes)
        contract = Contract.load(options.contract_path)
        self.page_shape = ShapeChecker(contract, _schema(contract, "listLinks"))
        self.detail_shape = ShapeChecker(contract, _schema(contract, "getLink"))
        self.state: State | None = None
        self._pending_pages: dict[int, Any] = {}  # fetched, not yet written
        self._written = False  # the work folder holds this run's state
        self._counted = 0  # of the session's requests, those added to state.requests
        self._listed: dict[str, dict[str, Any]] = {}  # list items by id, for the detail check

    def close(self) -> None:
        self.session.close()

    # -- the run ----------------------------------------------------------------------------

    def begin(self) -> State:
        """The state to go on from: the saved one with `--resume`, else a fresh one (not written
        until the first link is saved)."""
        options = self.options
        if self.work.exists():
            state = self.work.load()
            if not options.resume:
                raise StateError(
                    f"{options.out} holds an unfinished snapshot of {state.target} "
                    f"({len(state.saved)} of {state.total} links saved): add --resume to go on, "
                    f"or delete {self.work.path} to start over"
                )
            if state.target != options.base_url:
                raise StateError(
                    f"the unfinished snapshot in {options.out} is of {state.target}, not "
                    f"{options.base_url}: snapshot that target with --resume, or delete "
                    f"{self.work.path} to start over"
                )
            self._written = True
            state.saved = [link_id for link_id in state.saved if self.work.has_link(link_id)]
            try:
                for offset in state.page_offsets:
                    self._take_listed(self.work.page(offset))
            except (OSError, ValueError) as exc:
                raise StateError(
                    f"{self.work.path} is damaged ({exc}); delete it to start over"
                ) from None
            return state
        return State(
            target=options.base_url,
            client_id=options.client_id,
            started_at=format_timestamp(Clock().now()),
            contract_sha256=self.contract_sha256,
        )

    def run(self) -> int:
        state = self.state = self.begin()
        resumed = self._written
        self.target.exchange_token()
        first = self._list_page(0)
        total = first["pagination"]["total"]
        plan = self._plan(state, first, resumed)
        environment = self.target.environment
        self._say(f"{self.options.base_url} ({environment}) lists {_count(total, 'link')}")
        if resumed:
            gone = f" ({len(state.missing)} listed but gone)" if state.missing else ""
            self._say(f"resuming: {_count(len(state.saved), 'link')} saved before{gone}")
        self._say(f"plan: {plan.describe(self.options.rate)}")
        if self.options.dry_run:
            self._say(f"dry run: nothing was written to {self.options.out}")
            return EXIT_OK
        self.progress.plan(plan.requests - self.session.sent)
        if environment == "live":
            self._warn(
                "these are a live application's credentials: the set holds its workspace's "
                "links, and the emulator serves them as its sandbox"
            )
        if resumed:
            change = _page_change(self.work.page(0), first)
            if change:
                self._warn(f"the first page changed since the snapshot began: {change}")
        else:
            state.total = total
            self._add_page(state, 0, first)
        self._list_rest(state)
        self._fetch_details(state)
        if plan.rechecks:
            change = _page_change(first, self._list_page(0))
            if change:
                self._warn(f"the first page changed while the snapshot ran: {change}")
        self._finish(state)
        return EXIT_OK

    def stop_note(self) -> str:
        """What a stopped run leaves, and how to go on."""
        state = self.state
        if state is None or not self._written:
            if state is not None and (state.ids or self._pending_pages):
                self._flush(state)
            else:
                return "nothing was saved"
        assert state is not None
        self._count_requests(state)
        self.work.save_state(state)
        left = max(state.total - len(state.saved) - len(state.missing), 0)
        return (
            f"{len(state.saved)} of {state.total} links saved, {left} to go; "
            "run the same command with --resume to go on"
        )

    def _plan(self, state: State, first: Mapping[str, Any], resumed: bool) -> Plan:
        total = first["pagination"]["total"]
        pages = max(math.ceil(total / PAGE_SIZE), 1)
        if state.listed:
            pages_left = 0
            details = len(state.ids) - len(state.saved) - len(state.missing)
        else:
            pages_left = pages - len(set(state.page_offsets) | {0})
            details = total - len(state.saved) - len(state.missing)
        details = max(details, 0)
        # A resumed run with nothing left to fetch has just seen the first page: no second look.
        rechecks = 1 if (pages_left or details or not resumed) else 0
        return Plan.make(1 + pages_left, details, rechecks, self.interval)

    # -- listing ------------------------------------------------------------------------------

    def _list_rest(self, state: State) -> None:
        offset = max(state.page_offsets, default=0)
        while not state.listed:
            offset += PAGE_SIZE
            self._add_page(state, offset, self._list_page(offset))

    def _add_page(self, state: State, offset: int, page: Mapping[str, Any]) -> None:
        items = page["data"]
        known = set(state.ids)
        for item in items:
            if item["id"] in known:
                self._warn(f"{item['id']} is listed twice (the second time at offset {offset})")
                continue
            known.add(item["id"])
            state.ids.append(item["id"])
        self._take_listed(page)
        state.page_offsets.append(offset)
        self._pending_pages[offset] = page
        pagination = page["pagination"]
        past_end = offset + PAGE_SIZE >= max(state.total, pagination["total"])
        if not items or not pagination["hasMore"] or past_end:
            state.listed = True
            if len(state.ids) != state.total:
                self._warn(
                    f"the first page gave a total of {state.total}, the pages held "
                    f"{len(state.ids)} links"
                )
        if self._written:
            self._flush(state)

    def _take_listed(self, page: Mapping[str, Any]) -> None:
        for item in page["data"]:
            self._listed.setdefault(item["id"], item)

    def _list_page(self, offset: int) -> dict[str, Any]:
        params = {"limit": str(PAGE_SIZE), "offset": str(offset)}
        page = self._get(LINKS_PATH, params)
        if page is None:
            raise Stopped(f"the list page at offset {offset} answered 404")
        mismatch = self.page_shape.first_mismatch(page)
        if mismatch is not None:
            raise ShapeMismatch(_shape_message(f"GET {LINKS_PATH}?offset={offset}", mismatch))
        return page

    # -- details ------------------------------------------------------------------------------

    def _fetch_details(self, state: State) -> None:
        done = set(state.saved) | set(state.missing)
        for link_id in state.ids:
            if link_id in done:
                continue
            detail = self._get(f"{LINKS_PATH}/{quote(link_id, safe='')}")
            record = None if detail is None else self._record(link_id, detail)
            if not self._written or self._pending_pages:  # checked: the first write may go
                self._flush(state)
            if record is None:
                self._warn(f"{link_id} is listed, but its detail answered 404: left out")
                state.missing.append(link_id)
            else:
                self.work.save_link(link_id, record)
                state.saved.append(link_id)
            self._count_requests(state)
            self.work.save_state(state)

    def _record(self, link_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        where = f"GET {LINKS_PATH}/{link_id}"
        mismatch = self.detail_shape.first_mismatch(detail)
        if mismatch is not None:
            raise ShapeMismatch(_shape_message(where, mismatch))
        if detail["id"] != link_id:
            raise ShapeMismatch(f"{where} answered the link {detail['id']!r}")
        listed = self._listed.get(link_id)
        differing = summary_differences(listed, detail) if listed is not None else []
        if differing:
            assert self.state is not None
            self.state.listed_differences.append(f"{link_id} ({', '.join(differing)})")
        record = record_from_detail(detail, self.options.short_base)
        try:
            link_from_json(record, "$")
        except InvalidRecord as exc:
            raise ShapeMismatch(f"{where}: the emulator cannot serve it: {exc}") from None
        return record

    # -- requests -----------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The JSON object of a 200; None for a 404. A 5xx or a lost connection is tried again
        a few times, a 401 once with a new token; anything else stops the run."""
        url = self.target.url(path)
        failures = 0
        renewed = False
        while True:
            headers = {"Authorization": f"Bearer {self.target.bearer()}"}
            try:
                response = self.session.get(url, params=params, headers=headers)
            except requests.RequestException as exc:
                failures += 1
                self._retry_or_stop(failures, f"GET {path}: {type(exc).__name__}", None)
                continue
            status = response.status_code
            if status == 401 and not renewed:
                renewed = True
                self.target.exchange_token()
                continue
            if status >= 500:
                failures += 1
                wait = parse_retry_after(response.headers.get("Retry-After"))
                self._retry_or_stop(failures, f"GET {path} answered {status}", wait)
                continue
            if status == 404 and path != LINKS_PATH:
                return None
            if status == 429:
                raise Stopped(f"GET {path} still answered 429 after waiting out its Retry-After")
            if status != 200:
                raise Stopped(f"GET {path} answered {status}{_error_code(response)}")
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise ShapeMismatch(f"GET {path} answered 200 without a JSON object")
            return body

    def _retry_or_stop(self, failures: int, what: str, retry_after: float | None) -> None:
        if failures > MAX_RETRIES:
            raise Stopped(f"{what}, {failures} times in a row")
        wait = retry_after
        if wait is None:
            wait = max(self.interval, _MIN_BACKOFF_SECONDS) * 2 ** (failures - 1)
        wait = min(wait, MAX_RETRY_AFTER_SECONDS)
        self.progress.note(f"{what}: trying again in {wait:.1f} s ({failures} of {MAX_RETRIES})")
        self.progress.plan(1)
        self.session.pacer.defer(wait)

    # -- writing ------------------------------------------------------------------------------

    def _count_requests(self, state: State) -> None:
        state.requests += self.session.sent - self._counted
        self._counted = self.session.sent

    def _flush(self, state: State) -> None:
        """Write the state and the pages not written yet (the first write makes the folder)."""
        if not self._written:
            self.work.create()
            self._written = True
        for offset, page in sorted(self._pending_pages.items()):
            self.work.save_page(offset, page)
        self._pending_pages.clear()
        self.work.save_state(state)

    def _finish(self, state: State) -> None:
        out = self.options.out
        out.mkdir(parents=True, exist_ok=True)  # not made yet when there was no link to save
        records = list(self.work.links(state.saved)) if state.saved else []
        try:
            links_from_document({"version": 1, "links": records})
        except InvalidRecord as exc:
            raise ShapeMismatch(f"the saved links cannot be served: {exc}") from None
        links_bytes = render_sample_set(records)
        verbatim = {key: sum(key in record for record in records) for key in VERBATIM_KEYS}
        files: dict[str, bytes] = {}
        kept_applications = (out / APPLICATIONS_FILE).is_file()
        if kept_applications:
            applications = (out / APPLICATIONS_FILE).read_bytes()
        else:
            applications = (default_fixtures_dir() / APPLICATIONS_FILE).read_bytes()
            files[APPLICATIONS_FILE] = applications
        files[LINKS_FILE] = links_bytes
        self._count_requests(state)
        manifest = {
            "target": state.target,
            "environment": self.target.environment,
            "startedAt": state.started_at,
            "finishedAt": format_timestamp(Clock().now()),
            "contractSha256": self.contract_sha256,
            "tool": f"8here-emulator {_version()}",
            "applications": "kept" if kept_applications else "default",
            "counts": {
                "links": len(records),
                "missing": len(state.missing),
                "pages": len(state.page_offsets),
                "requests": state.requests,
                "verbatim": verbatim,
            },
            "files": {
                APPLICATIONS_FILE: sha256_of(applications),
                LINKS_FILE: sha256_of(links_bytes),
            },
            "warnings": _all_warnings(state),
        }
        files[MANIFEST_FILE] = json_bytes(manifest, for_people=True)

        def check(staging: Path) -> None:
            load_sample_set(staging / LINKS_FILE)
            if kept_applications:
                Registry.from_file(out / APPLICATIONS_FILE)
            else:
                Registry.from_file(staging / APPLICATIONS_FILE)

        try:
            publish(out, files, check)
        except FixtureError as exc:
            self.work.save_state(state)
            raise Stopped(f"the new set would not serve: {exc}") from None
        self.work.remove()
        self._summary(manifest, links_bytes)

    def _summary(self, manifest: Mapping[str, Any], links_bytes: bytes) -> None:
        out = self.options.out
        counts = manifest["counts"]
        self.progress.finish()
        self._say(
            f"saved {_count(counts['links'], 'link')} to {out / LINKS_FILE} "
            f"(sha256 {sha256_of(links_bytes)[:12]}), "
            f"{'kept' if manifest['applications'] == 'kept' else 'wrote the default'} "
            f"{out / APPLICATIONS_FILE}, and {out / MANIFEST_FILE}; "
            f"{counts['requests']} requests in all"
        )
        for key, why in _VERBATIM.items():
            times = counts["verbatim"][key]
            if times:
                self._say(
                    f"{key} kept verbatim for {_count(times, 'link')}: {why}; "
                    "the emulator serves the target's value"
                )
        for warning in manifest["warnings"]:
            self._say(f"warning: {warning}")
        self._say(f"serve it with: 8here-emulator serve --fixtures {out}")

    def _warn(self, message: str) -> None:
        assert self.state is not None
        self.state.warnings.append(message)
        self.progress.note(f"warning: {message}")

    def _say(self, message: str) -> None:
        if self.out is not None:
            self.out.write(f"snapshot: {message}\n")
            self.out.flush()


_VERBATIM = {
    "shortUrl": "another short URL than the emulator derives from its short base and the slug",
    "qrCodeBase64": "a QR code encoded otherwise than the emulator's",
    "clicks": "clicks other than the analytics' totalClicks",
    "hasVisits": "hasVisits other than totalClicks > 0",
}


def _all_warnings(state: State) -> list[str]:
    """The run's warnings, and the links listed otherwise than their detail, in one line."""
    warnings = list(state.warnings)
    differences = state.listed_differences
    if differences:
        shown = "; ".join(differences[:_MAX_LISTED_WARNINGS])
        more = len(differences) - _MAX_LISTED_WARNINGS
        tail = f"; and {more} more" if more > 0 else ""
        warnings.append(
            f"{_count(len(differences), 'link')} listed with other values than their "
            f"detail (the set keeps the detail's): {shown}{tail}"
        )
    return warnings


def _schema(contract: Contract, operation_id: str) -> Mapping[str, Any]:
    schema = contract.body_schema(operation_id, 200)
    if schema is None:
        raise ValueError(f"the contract has no 200 body for {operation_id}")
    return schema


def _shape_message(where: str, mismatch: Mismatch) -> str:
    return (
        f"the target's answer does not have the contract's shape: {where}: {mismatch}. "
        "Nothing was written; the contract (contract/openapi.yaml) and the emulator need to "
        "follow the target first (8here-emulator drift reports every difference)"
    )


def _page_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    if before == after:
        return None
    was, now = before["pagination"]["total"], after["pagination"]["total"]
    if was != now:
        return f"the total went from {was} to {now}"
    old = {item["id"]: item for item in before["data"]}
    changed = [item["id"] for item in after["data"] if old.get(item["id"]) != item]
    if not changed:
        return "its links come in another order"
    return f"{_count(len(changed), 'link')} changed (first: {changed[0]})"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _error_code(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    code = error.get("code") if isinstance(error, dict) else None
    return f" {code}" if isinstance(code, str) else ""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("8here-emulator")
    except PackageNotFoundError:
        return "unknown"
