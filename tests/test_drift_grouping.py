"""Grouping findings by cause (emulator/drift/grouping.py): the drift report's rows, a proxy's
checks. Pure data in, groups out."""

from __future__ import annotations

import pytest

from emulator.drift.grouping import Grouping, Occurrence, by_cause, by_operation, group


def _seen(
    seen_in: str | int,
    cause: str = "header X-RateLimit-Remaining",
    *,
    kind: str = "header-presence",
    location: str | None = None,
    operation: str = "listLinks",
    target: str = "absent",
) -> Occurrence[str]:
    return Occurrence(
        kind=kind,
        cause=cause,
        location=location or cause,
        operation=operation,
        seen_in=seen_in,
        emulator="15",
        target=target,
        contract="emulator",
        item=f"{seen_in}: {cause}",
    )


def test_one_cause_seen_in_many_probes_is_one_group_with_every_occurrence() -> None:
    found = [
        _seen("list.default"),
        _seen("list.default", "body $..clicks", kind="type", location="body $.data[*].clicks"),
        _seen("detail.listed", operation="getLink"),
        _seen(
            "detail.listed",
            "body $..clicks",
            kind="type",
            location="body $.clicks",
            operation="getLink",
        ),
        _seen("create.valid", operation="createLink", target="absent again"),
    ]
    header, clicks = group(found)
    assert (header.cause, header.kind, header.count) == (
        "header X-RateLimit-Remaining",
        "header-presence",
        3,
    )
    assert header.seen_in == ["list.default", "detail.listed", "create.valid"]
    assert header.operations == ["listLinks", "getLink", "createLink"]
    assert header.example.target == "absent"  # the first seen represents the group
    assert header.last.target == "absent again"
    assert header.items == [
        "list.default: header X-RateLimit-Remaining",
        "detail.listed: header X-RateLimit-Remaining",
        "create.valid: header X-RateLimit-Remaining",
    ]
    assert clicks.locations == ["body $.data[*].clicks", "body $.clicks"]
    assert clicks.operations == ["listLinks", "getLink"]


def test_the_same_place_with_another_kind_is_another_group() -> None:
    found = [
        _seen(1, "body $..destination", kind="nullability"),
        _seen(2, "body $..destination", kind="type"),
    ]
    assert [(g.kind, g.count) for g in group(found)] == [("nullability", 1), ("type", 1)]


def test_a_proxy_groups_by_operation_and_exact_location() -> None:
    found = [
        _seen(1, "body $..clicks", kind="type", location="body $.data[*].clicks"),
        _seen(2, "body $..clicks", kind="type", location="body $.clicks", operation="getLink"),
        _seen(3, "body $..clicks", kind="type", location="body $.data[*].clicks"),
    ]
    assert len(group(found, by_cause)) == 1
    groups = group(found, by_operation)
    assert [(g.key, g.count) for g in groups] == [
        (("listLinks", "type", "body $.data[*].clicks"), 2),
        (("getLink", "type", "body $.clicks"), 1),
    ]
    assert (groups[0].first.seen_in, groups[0].last.seen_in) == (1, 3)


def test_a_bounded_grouping_counts_everything_and_keeps_only_what_it_may() -> None:
    grouping: Grouping[str] = Grouping(by_operation, keep=2)
    for sequence in range(1, 501):
        grouping.add(_seen(sequence, "body $..hasVisits → visited", kind="renamed"))
    (renamed,) = grouping.groups()
    assert renamed.count == 500
    assert (renamed.first.seen_in, renamed.last.seen_in) == (1, 500)
    assert len(renamed.occurrences) == 2
    assert renamed.seen_in == [1, 2]
    grouping.clear()
    assert len(grouping) == 0


def test_keep_must_allow_one_occurrence() -> None:
    with pytest.raises(ValueError):
        Grouping(keep=0)


def test_a_grouping_with_most_groups_counts_what_would_open_one_too_many() -> None:
    grouping: Grouping[str] = Grouping(by_operation, most_groups=2)
    for name in ("a", "b", "c", "a", "d"):
        grouping.add(_seen(1, f"body $.{name}", kind="type"))
    assert [g.first.location for g in grouping.groups()] == ["body $.a", "body $.b"]
    assert grouping.groups()[0].count == 2
    assert grouping.overflow == 2
    grouping.clear()
    assert (len(grouping), grouping.overflow) == (0, 0)
