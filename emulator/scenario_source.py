"""Reading scenario files: YAML (JSON is YAML too) with the line of every value kept, checked
against the shipped JSON Schema, with `include:` resolved and merged.

Every problem is a `ScenarioError` whose one line names the file, the line and the path of the
offending value (`shop.yaml:12: links[3].visits[0].at: ...`).

Plain scalars are read as YAML 1.2 reads them (as JSON does): `true`/`false` only are booleans
(`NO` is Norway, not false) and timestamps stay strings; the emulator's own parsers read them.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = "scenario.schema.json"
SHIPPED_DIR = "scenarios"
SUFFIX = ".yaml"
MAX_BYTES = 8 * 1024 * 1024
MAX_VALUES = 1_000_000  # after aliases are expanded: a small file must not become a huge one
MAX_DEPTH = 32
MAX_INCLUDES = 64
# The top-level lists that include and several --scenario add up; other keys: the later wins.
LISTS = ("workspaces", "applications", "links", "faults", "usage")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")

PathKey = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_BOOLEANS["FALSE"] = False
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The tags plain YAML resolves to; any other (`!foo`, `!!python/...`, `!!binary`) is refused.
_TAGS = {
    _CORE + name for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
}


def format_path(path: PathKey) -> str:
    """`("links", 3, "at")` as `links[3].at`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; `str()` is one line: `source:line: path: problem`."""

    def __init__(self, source: str, line: int | None, path: str, problem: str) -> None:
        self.source = source
        self.line = line
        self.path = path
        self.problem = " ".join(problem.split())
        where = source + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {path}: {self.problem}" if path else f"{where}: {self.problem}")


@dataclass
class Document:
    """One file's (or body's) value, the line of each value by path, and where it came from."""

    source: str
    value: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    folder: Path | None = None  # for includes relative to it; None: shipped names only
    name: str | None = None
    included: list[str] = field(default_factory=list)  # the names of what it includes
    key: str | None = None  # the file it was read from (or the shipped name), to catch cycles

    def line_of(self, path: PathKey) -> int | None:
        """The line of `path`, or of the nearest value that holds it (a missing key's object)."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: PathKey, problem: str) -> ScenarioError:
        return ScenarioError(self.source, self.line_of(path), format_path(path), problem)


# -- YAML with lines ------------------------------------------------------------------------------


def parse_text(text: str, source: str, folder: Path | None = None) -> Document:
    """A document from YAML or JSON text: one mapping at the top."""
    if len(text) > MAX_BYTES:
        raise ScenarioError(source, None, "", f"larger than {MAX_BYTES} bytes")
    if text.lstrip()[:1] in ("{", "["):
        document = _parse_json(text, source, folder)
        if document is not None:
            return document
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ScenarioError(source, line, "", f"not valid YAML: {problem}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ScenarioError(source, None, "", f"not valid YAML: {exc}") from None
    document = Document(source, None, folder=folder)
    if node is None:
        raise ScenarioError(source, 1, "", "empty: a scenario needs at least `version: 1`")
    if _expanded_size(node, {}, 0) > MAX_VALUES:
        raise ScenarioError(source, None, "", f"more than {MAX_VALUES} values (aliases included)")
    document.value = _Builder(document).build(node, (), 0)
    if not isinstance(document.value, dict):
        raise document.error((), "a scenario is a mapping (an object in JSON) of keys to values")
    return document


def _parse_json(text: str, source: str, folder: Path | None) -> Document | None:
    """JSON read as JSON (YAML refuses some of it: `\\ud83c\\udf89` escapes, raw DEL), with the
    line of every value; None when the text is not JSON, to be read as YAML."""
    document = Document(source, None, folder=folder)
    try:
        value, end = _JsonReader(text, document).value(0, (), 0)
    except (ValueError, RecursionError):
        return None
    if text[end:].strip():
        return None
    document.value = value
    if not isinstance(value, dict):
        raise document.error((), "a scenario is a mapping (an object in JSON) of keys to values")
    return document


class _JsonReader:
    """Objects and arrays walked here (to know each value's line), scalars by `json`'s own
    scanner. Raises ValueError for anything that is not JSON."""

    def __init__(self, text: str, document: Document) -> None:
        self.text = text
        self.document = document
        self.count = 0
        self.scalar = json.JSONDecoder(parse_constant=self._refuse).raw_decode
        self.newlines = [match.start() for match in re.finditer("\n", text)]

    @staticmethod
    def _refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def line(self, index: int) -> int:
        return bisect.bisect_left(self.newlines, index) + 1

    def skip(self, index: int) -> int:
        while index < len(self.text) and self.text[index] in " \t\r\n":
            index += 1
        return index

    def value(self, index: int, path: PathKey, depth: int) -> tuple[Any, int]:
        index = self.skip(index)
        document = self.document
        document.lines.setdefault(path, self.line(index))
        self.count += 1
        if self.count > MAX_VALUES:
            raise document.error(path, f"more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            raise document.error(path, f"nested more than {MAX_DEPTH} levels deep")
        char = self.text[index : index + 1]
        if char == "[":
            items: list[Any] = []
            index = self.skip(index + 1)
            while self.text[index : index + 1] != "]":
                item, index = self.value(index, (*path, len(items)), depth + 1)
                items.append(item)
                index = self.after(index, "]")
            return items, index + 1
        if char == "{":
            result: dict[str, Any] = {}
            index = self.skip(index + 1)
            while self.text[index : index + 1] != "}":
                key, after = self.scalar(self.text, index)
                if not isinstance(key, str):
                    raise ValueError("keys are strings")
                if key in result:
                    document.lines[(*path, key)] = self.line(index)
                    raise document.error((*path, key), f"the key {key!r} is given twice")
                document.lines[(*path, key)] = self.line(index)
                index = self.skip(after)
                if self.text[index : index + 1] != ":":
                    raise ValueError("expected ':'")
                result[key], index = self.value(index + 1, (*path, key), depth + 1)
                index = self.after(index, "}")
            return result, index + 1
        return self.scalar(self.text, index)

    def after(self, index: int, closer: str) -> int:
        """Past the comma after a member, or at the closing bracket."""
        index = self.skip(index)
        char = self.text[index : index + 1]
        if char == ",":
            index = self.skip(index + 1)
            if self.text[index : index + 1] == closer:
                raise ValueError("a trailing comma")
            return index
        if char != closer:
            raise ValueError(f"expected ',' or {closer!r}")
        return index


def _expanded_size(node: yaml.Node, sizes: dict[int, int], depth: int) -> int:
    """How many values the node stands for once its aliases are expanded, counted over the
    nodes themselves (an alias is the node it names, met again), so that a small file of
    aliases of aliases is refused before it is built. Below MAX_DEPTH it looks no further: the
    builder refuses that depth, naming the place."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if depth > MAX_DEPTH:
        return 1
    sizes[id(node)] = MAX_VALUES + 1  # while counting: an alias of itself is too many
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [value for _key, value in node.value]
    size = 1
    for child in children:
        size += _expanded_size(child, sizes, depth + 1)
        if size > MAX_VALUES:
            break
    sizes[id(node)] = size
    return size


class _Builder:
    def __init__(self, document: Document) -> None:
        self.document = document
        self.count = 0

    def build(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        document = self.document
        document.lines.setdefault(path, node.start_mark.line + 1)
        self.count += 1
        if self.count > MAX_VALUES:
            raise document.error(path, f"more than {MAX_VALUES} values (aliases included)")
        if depth > MAX_DEPTH:
            raise document.error(path, f"nested more than {MAX_DEPTH} levels deep")
        if node.tag not in _TAGS:
            raise document.error(path, f"the tag {node.tag} is not supported")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [
                self.build(item, (*path, index), depth + 1) for index, item in enumerate(node.value)
            ]
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_path = (*path, "?")
            if key_node.tag == _CORE + "merge":
                document.lines[key_path] = key_node.start_mark.line + 1
                raise document.error(path, "merge keys (<<) are not supported: use include")
            plain = isinstance(key_node, yaml.ScalarNode) and key_node.tag in _TAGS
            key = self.scalar(key_node, path) if plain else None
            if not isinstance(key, str):
                document.lines[key_path] = key_node.start_mark.line + 1
                raise document.error(key_path, "keys must be strings")
            if key in result:
                document.lines[(*path, key)] = key_node.start_mark.line + 1
                raise document.error((*path, key), f"the key {key!r} is given twice")
            document.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result

    def scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
        text: str = node.value
        if node.style:  # quoted, or a literal or folded block
            return text
        if _NULL.fullmatch(text):
            return None
        if text in _BOOLEANS:
            return _BOOLEANS[text]
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
        return text


def reads_as_text(text: str) -> bool:
    """Whether `text`, written plain (unquoted), reads back as this very string."""
    return not (
        _NULL.fullmatch(text) or text in _BOOLEANS or _INT.fullmatch(text) or _FLOAT.fullmatch(text)
    )


class _Dumper(yaml.SafeDumper):
    pass


# PyYAML writes these line breaks raw inside single quotes, where a reader folds them into a
# space; double quotes escape them (\N, \L, \P).
_UNICODE_BREAKS = re.compile("[\x85\u2028\u2029]")


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # PyYAML quotes what YAML 1.1 would misread; this also quotes what YAML 1.2 would (`1e3`).
    plain = reads_as_text(text) and not _UNICODE_BREAKS.search(text)
    style = None if plain else '"'
    return dumper.represent_scalar(_CORE + "str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def dump_yaml(value: dict[str, Any]) -> str:
    """A document as YAML that `parse_text` reads back as the same value: blocks for the
    structure, one line (a flow mapping) for each leaf entry, such as a visit."""
    return yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=10_000,
    )


# -- the schema -----------------------------------------------------------------------------------


@cache
def schema_text() -> str:
    return resources.files("emulator").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text())
    # Validated with its `$ref`s replaced by what they name: the same schema, checked about
    # twice as fast (no reference is looked up per value).
    return Draft202012Validator(_inlined(schema, schema["$defs"]))


def _inlined(value: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        reference = value.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inlined(item, definitions) for key, item in value.items() if key != "$defs"}
    if isinstance(value, list):
        return [_inlined(item, definitions) for item in value]
    return value


def check_schema(document: Document) -> None:
    """The first problem the schema finds in the document, as a ScenarioError."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(document.value))
    if error is None:
        return
    path: PathKey = tuple(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in allowed]
        if unknown:
            path = (*path, unknown[0])
            message = f"unknown key {unknown[0]!r}" + _suggestion(unknown[0], allowed)
    elif error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        if missing:
            path, message = (*path, missing[0]), f"{missing[0]} is required"
    raise document.error(path, message)


def _suggestion(word: str, choices: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(sorted(choices))})"


# -- shipped scenarios and files ------------------------------------------------------------------


def shipped_names() -> list[str]:
    folder = resources.files("emulator").joinpath(SHIPPED_DIR)
    return sorted(
        entry.name.removesuffix(SUFFIX) for entry in folder.iterdir() if entry.name.endswith(SUFFIX)
    )


@cache
def shipped_descriptions() -> dict[str, str]:
    """Each shipped scenario's name and its one-line description."""
    return {name: str(read_shipped(name).value.get("description", "")) for name in shipped_names()}


def is_shipped_name(text: str) -> bool:
    """Whether `text` names a shipped scenario rather than a path: letters, digits and dashes."""
    return NAME_PATTERN.fullmatch(text) is not None


def shipped_text(name: str) -> str:
    return (
        resources.files("emulator").joinpath(SHIPPED_DIR, name + SUFFIX).read_text(encoding="utf-8")
    )


def read_shipped(name: str) -> Document:
    if name not in shipped_names():
        problem = f"no shipped scenario by that name (shipped: {', '.join(shipped_names())})"
        raise ScenarioError(name, None, "", problem)
    document = parse_text(shipped_text(name), f"{SHIPPED_DIR}/{name}{SUFFIX}")
    document.name = document.key = name
    return document


def read_file(path: Path, shown: str | None = None) -> Document:
    source = shown or str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(source, None, "", f"cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise ScenarioError(source, None, "", f"larger than {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(source, None, "", f"not UTF-8 text ({exc.reason})") from None
    document = parse_text(text, source, path.resolve().parent)
    document.name = path.stem
    document.key = str(path.resolve())
    return document


def read(reference: str | Path, folder: Path | None = None) -> Document:
    """A shipped scenario by name, or a file (relative to `folder` when given)."""
    if isinstance(reference, str) and is_shipped_name(reference):
        return read_shipped(reference)
    path = Path(reference) if folder is None else folder / reference
    return read_file(path, str(path))


def from_value(value: object, source: str = "<dict>", folder: Path | None = None) -> Document:
    """A document given as a value (a dict, from a test): no lines to name."""
    if not isinstance(value, dict):
        raise ScenarioError(source, None, "", "a scenario is a mapping of keys to values")
    return Document(source, json.loads(json.dumps(value, default=str)), folder=folder)


# -- include and merge ----------------------------------------------------------------------------


@dataclass
class Merged:
    """Documents merged in order: the lists in LISTS add up, for any other key the later
    wins. `locate` finds where a value of the merged scenario was written."""

    value: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    _origins: dict[PathKey, tuple[Document, PathKey]] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        """The documents' names (each its `name`, its file's, or what it includes) joined."""
        return " + ".join(self.names) or None

    def add(self, document: Document) -> None:
        for key, value in document.value.items():
            if key == "include":
                continue
            if key in LISTS and isinstance(value, list):
                items = self.value.setdefault(key, [])
                for index, item in enumerate(value):
                    self._origins[(key, len(items))] = (document, (key, index))
                    items.append(item)
            else:
                self.value[key] = value
            self._origins[(key,)] = (document, (key,))

    def error(self, path: PathKey, problem: str) -> ScenarioError:
        """A ScenarioError for the value at `path` of the merged scenario."""
        for cut in range(len(path), -1, -1):
            found = self._origins.get(path[:cut])
            if found is not None:
                document, where = found
                return document.error((*where, *path[cut:]), problem)
        return ScenarioError("scenario", None, format_path(path), problem)


def merge(documents: list[Document]) -> Merged:
    """The documents checked and merged in order, each after what it includes."""
    merged = Merged()
    for document in documents:
        _expand(document, merged, [document.key] if document.key else [])
        merged.names.append(_display_name(document))
    merged.names = [name for name in merged.names if name]
    return merged


def _expand(document: Document, merged: Merged, stack: list[str]) -> None:
    check_schema(document)
    includes = document.value.get("include") or []
    for index, reference in enumerate(includes):
        path = ("include", index)
        if len(stack) >= MAX_INCLUDES:
            raise document.error(path, f"includes nested more than {MAX_INCLUDES} deep")
        if not is_shipped_name(reference) and document.folder is None:
            raise document.error(
                path,
                f"{reference!r} is not a shipped scenario's name; only those can be included "
                "here, since a request body cannot read files",
            )
        shipped = is_shipped_name(reference)
        key = reference if shipped else str((document.folder / reference).resolve())
        if key in stack:
            raise document.error(path, f"includes itself: {' -> '.join([*stack, key])}")
        try:
            included = read(reference, document.folder)
        except ScenarioError as exc:
            if exc.line is None and not exc.path:  # cannot be read at all: say where it was named
                raise document.error(path, f"{reference}: {exc.problem}") from None
            raise
        included.name = included.name or reference
        _expand(included, merged, [*stack, key])
        document.included.append(_display_name(included))
    merged.add(document)


def _display_name(document: Document) -> str:
    if isinstance(document.value.get("name"), str):
        return str(document.value["name"])
    if document.name:
        return document.name
    return " + ".join(document.included)
