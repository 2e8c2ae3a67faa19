"""Link queries and pages, and the read-only store of the sandbox sample set."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from emulator import errors
from emulator.models import Analytics, Link, NewLink

SortKey = Literal["createdAt", "updatedAt", "title", "clicks"]
SortOrder = Literal["asc", "desc"]
SORT_KEYS: tuple[SortKey, ...] = ("createdAt", "updatedAt", "title", "clicks")
SORT_ORDERS: tuple[SortOrder, ...] = ("asc", "desc")


@dataclass(frozen=True)
class LinkQuery:
    q: str | None = None
    has_visits: bool | None = None
    limit: int = 25
    offset: int = 0
    sort_by: SortKey = "createdAt"
    sort_order: SortOrder = "desc"


@dataclass(frozen=True)
class Page:
    items: Sequence[Link]
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


SORT_VALUE: dict[SortKey, Callable[[Link], object]] = {
    "createdAt": lambda link: link.created_at,
    "updatedAt": lambda link: link.updated_at,
    "title": lambda link: link.title.casefold(),
    "clicks": lambda link: link.clicks,
}


def sort_links(links: Sequence[Link], sort_by: SortKey, sort_order: SortOrder) -> list[Link]:
    """Sort by the key, ties broken on id, both in the requested direction."""
    value = SORT_VALUE[sort_by]
    return sorted(links, key=lambda link: (value(link), link.id), reverse=sort_order == "desc")


def matches_text(link: Link, needle_folded: str) -> bool:
    return (
        needle_folded in link.title.casefold()
        or needle_folded in link.slug.casefold()
        or needle_folded in link.destination.casefold()
    )


class SandboxStore:
    """The static sample set, with every sort order computed once."""

    def __init__(self, links: Sequence[Link]) -> None:
        self._by_id = {link.id: link for link in links}
        self._by_slug = {link.slug: link for link in links}
        # (sort key, hasVisits filter) -> links in ascending order.
        self._orders: dict[tuple[SortKey, bool | None], list[Link]] = {}
        for key in SORT_KEYS:
            ascending = sort_links(links, key, "asc")
            self._orders[key, None] = ascending
            self._orders[key, True] = [link for link in ascending if link.has_visits]
            self._orders[key, False] = [link for link in ascending if not link.has_visits]
        self._folded = {link.id: _folded_text(link) for link in links}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, link_id: str) -> Link | None:
        return self._by_id.get(link_id)

    def by_slug(self, slug: str) -> Link | None:
        return self._by_slug.get(slug)

    def query(self, query: LinkQuery) -> Page:
        ordered = self._orders[query.sort_by, query.has_visits]
        if query.q:
            needle = query.q.casefold()
            ordered = [link for link in ordered if _contains(self._folded[link.id], needle)]
        total = len(ordered)
        start = min(query.offset, total)
        if query.sort_order == "asc":
            items = ordered[start : start + query.limit]
        else:
            end = total - start
            items = ordered[max(end - query.limit, 0) : end][::-1]
        return Page(items=items, total=total, limit=query.limit, offset=query.offset)

    def preview_create(self, new: NewLink, now: datetime) -> Link:
        """What a sandbox create answers: a well-formed link that is never stored."""
        if new.slug is not None and new.slug in self._by_slug:
            raise errors.slug_taken(new.slug)
        seed = f"{new.title}\n{new.destination}\n{new.slug}\n{now.isoformat()}"
        digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()
        slug = new.slug or self._generated_slug(digest)
        return Link(
            id="lnk_" + digest[:16],
            title=new.title,
            slug=slug,
            destination=new.destination,
            created_at=now,
            updated_at=now,
            analytics=Analytics(),
        )

    def _generated_slug(self, digest: str) -> str:
        for start in range(0, len(digest) - 8):
            candidate = digest[start : start + 8]
            if candidate not in self._by_slug:
                return candidate
        raise AssertionError("a 64-hex digest always yields a free 8-character slug")


def _folded_text(link: Link) -> tuple[str, str, str]:
    return (link.title.casefold(), link.slug.casefold(), link.destination.casefold())


def _contains(fields: tuple[str, str, str], needle: str) -> bool:
    return needle in fields[0] or needle in fields[1] or needle in fields[2]
