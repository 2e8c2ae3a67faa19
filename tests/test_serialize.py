from __future__ import annotations

import json

from emulator import serialize
from emulator.sample_set import load_sample_set
from emulator.settings import default_fixtures_dir
from emulator.store import LinkQuery, SandboxStore

SAMPLE = load_sample_set(default_fixtures_dir() / "sandbox_links.json")


def test_rendered_page_is_byte_identical_to_encoding_the_page() -> None:
    store = SandboxStore(SAMPLE)
    rendered = serialize.RenderedLinks("https://8here.in")
    for query in (LinkQuery(), LinkQuery(limit=100, offset=200), LinkQuery(q="zzz-no-match")):
        page = store.query(query)
        expected = serialize.dumps(serialize.page(page, "https://8here.in"))
        assert rendered.page(page) == expected
        assert rendered.page(page) == expected  # served from the cache the second time


def test_rendered_links_drop_the_least_recent_beyond_capacity() -> None:
    rendered = serialize.RenderedLinks("http://x", capacity=3)
    for link in SAMPLE[:5]:
        rendered.summary(link)
    again = rendered.summary(SAMPLE[0])
    assert json.loads(again)["shortUrl"] == f"http://x/{SAMPLE[0].slug}"
    assert len(rendered._summaries) == 3


def test_lone_surrogates_are_escaped_not_broken() -> None:
    body = serialize.dumps({"title": "a\ud800b"})
    assert body == b'{"title":"a\\ud800b"}'
    assert json.loads(body) == {"title": "a\ud800b"}


def test_non_ascii_is_sent_as_utf8() -> None:
    assert serialize.dumps({"t": "café 🚀"}) == '{"t":"café 🚀"}'.encode()
