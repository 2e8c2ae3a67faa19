"""A path convertor for ids of any characters, so that every id reaches `link_not_found`."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

ANY_ID = "any_id"


class AnyIdConvertor(Convertor[str]):
    regex = r"[\s\S]+"  # slashes and newlines included

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor(ANY_ID, AnyIdConvertor())
