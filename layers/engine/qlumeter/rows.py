"""The row normalizer: one declarative table of the v1 row fields (spec section 3).

``FIELDS`` drives both :func:`normalize` (raw row -> :class:`Observation`) and
:func:`row_json_schema`. Raw values are what a reader produces: CSV cells (``str``)
or JSON values parsed with ``parse_float=decimal.Decimal``.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache, partial
from typing import Any
from urllib.parse import urlsplit

from .observation import Observation, RowError, classify
from .paths import FileRef
from .vocabulary import (
    AGENT_TYPES,
    ASSET_TYPES,
    CLOUD_PROVIDERS,
    MODULES,
    OT_LEVELS,
    PIPELINE_STAGES,
    STATUSES,
)

#: Default longest accepted field value, in characters (``Limits.max_field_chars``).
MAX_FIELD_CHARS = 16384
#: Largest accepted integer (counts are 64-bit in every store downstream).
MAX_INT = 2**63 - 1


class FieldType(StrEnum):
    STRING = "string"
    ENUM = "enum"
    DATETIME = "datetime"
    COUNT = "int>=0"
    BOOL = "bool"
    IP_LIST = "ip-list"
    MODULES = "string-list(modules)"


class Norm(StrEnum):
    """How a string value is normalized after stripping."""

    AS_WRITTEN = "as written"
    LOWER = "lowercase"
    UPPER = "uppercase"
    HOST = "lowercase, trailing dot dropped"
    URL = "lowercase scheme and host, default port, fragment and trailing / dropped"
    INTERNED = "as written, interned"
    LOWER_INTERNED = "lowercase, interned"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One v1 row field. ``attr`` is the Observation attribute (None: checked against the path)."""

    name: str
    type: FieldType
    doc: str
    attr: str | None = ""  # "" means: same as ``name``
    values: frozenset[str] = frozenset()
    norm: Norm = Norm.AS_WRITTEN
    default: str | bool | None = None  # static defaults only; computed ones are in ``doc``
    required: bool = False

    @property
    def target(self) -> str | None:
        return self.name if self.attr == "" else self.attr


_S, _E, _D = FieldType.STRING, FieldType.ENUM, FieldType.DATETIME

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("tenant", _S, "must equal the path's tenant= when present", attr=None),
    FieldSpec("source", _S, "must equal the path's source= when present", attr=None),
    FieldSpec("observed_at", _D, "ISO 8601; default: the path's date at 00:00 UTC"),
    FieldSpec("asset_type", _E, "the entity type", values=ASSET_TYPES, required=True),
    FieldSpec("asset_id", _S, "platform canonical asset id"),
    FieldSpec("agent_id", _S, "Qualys agent id"),
    FieldSpec("agent_type", _E, "agent flavour", values=AGENT_TYPES, default="standard"),
    FieldSpec("cloud_provider", _E, "cloud provider", values=CLOUD_PROVIDERS),
    FieldSpec("cloud_resource_id", _S, "instance id / ARN / cloud-native id"),
    FieldSpec("fqdn", _S, "fully qualified domain name", norm=Norm.HOST),
    FieldSpec("hostname", _S, "host name", norm=Norm.HOST),
    FieldSpec("netbios", _S, "NetBIOS name", norm=Norm.HOST),
    FieldSpec("ip", FieldType.IP_LIST, "IPv4/IPv6 addresses", attr="ips"),
    FieldSpec("network_id", _S, "scope of ip", norm=Norm.INTERNED, default="default"),
    FieldSpec("identity_key", _S, "email / UPN / user id", norm=Norm.LOWER),
    FieldSpec("idp", _S, "identity provider, e.g. okta", norm=Norm.LOWER_INTERNED),
    FieldSpec("url", _S, "web app / API endpoint url", norm=Norm.URL),
    FieldSpec("http_method", _S, "API endpoint method", norm=Norm.UPPER, default="GET"),
    FieldSpec("device_id", _S, "mobile device id"),
    FieldSpec("node_id", _S, "container node id"),
    FieldSpec("instance_id", _S, "serverless container instance id"),
    FieldSpec("image_digest", _S, "image digest, sha256:..."),
    FieldSpec("scan_id", _S, "image scan id"),
    FieldSpec("pipeline_stage", _E, "image scan stage", values=PIPELINE_STAGES),
    FieldSpec("status", _E, "lifecycle status", values=STATUSES, default="active"),
    FieldSpec("modules", FieldType.MODULES, "modules; unknown names ignored with a warning"),
    FieldSpec("vuln_count", FieldType.COUNT, "vulnerabilities found"),
    FieldSpec("open_port_count", FieldType.COUNT, "open ports found"),
    FieldSpec("has_findings", FieldType.BOOL, "default: vuln_count > 0"),
    FieldSpec(
        "ot_level", _E, "default: vulnerable when vuln_count > 0, else basic", values=OT_LEVELS
    ),
    FieldSpec("last_fim_event_at", _D, "ISO 8601; last FIM event"),
)

FIELD_NAMES: frozenset[str] = frozenset(spec.name for spec in FIELDS)


@dataclass(slots=True)
class RowWarnings:
    """Non-fatal findings collected over the rows of one file."""

    unknown_modules: set[str] = field(default_factory=set)

    def messages(self) -> list[str]:
        if not self.unknown_modules:
            return []
        return [f"unknown modules ignored: {name_list(self.unknown_modules)}"]


def name_list(names: set[str], limit: int = 20) -> str:
    """Sorted, printable, truncated list of names for a warning."""
    shown = [printable(name, 64) for name in sorted(names)[:limit]]
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(shown) + more


def printable(value: str, width: int = 64) -> str:
    """A value for a message: printable, valid UTF-8, cut to ``width`` characters."""
    text = value if len(value) <= width else value[:width] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- converters: (stripped non-empty str | other JSON value) -> attribute value ---

Converter = Callable[[Any], Any]

_SURROGATE = re.compile("[\ud800-\udfff]")
_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_JSON_TYPES = {bool: "a boolean", list: "an array", dict: "an object", int: "a number"}
_CACHE_MAX = 65536
_datetime_cache: dict[str, datetime] = {}
_modules_cache: dict[str | tuple[str, ...], tuple[frozenset[str], frozenset[str]]] = {}


def _kind(value: object) -> str:
    return _JSON_TYPES.get(type(value), "a number" if isinstance(value, Decimal) else "a value")


def _text(name: str, value: object) -> str:
    """A non-str JSON value of a string field: numbers are taken as their text."""
    if type(value) is int or isinstance(value, Decimal):
        return str(value)
    raise RowError(name, f"expected a string, got {_kind(value)}")


def _host(name: str, text: str) -> str:
    host = text.lower().removesuffix(".")
    if not host:
        raise RowError(name, "empty name")
    return host


def _lower_interned(text: str) -> str:
    return sys.intern(text.lower())


def _upper_interned(text: str) -> str:
    return sys.intern(text.upper())


def _string(spec: FieldSpec) -> tuple[Converter | None, Converter]:
    """(converter of a stripped str, or None to keep it as is; converter of other values)."""
    name = spec.name
    convert: Converter | None = {
        Norm.AS_WRITTEN: None,
        Norm.INTERNED: sys.intern,
        Norm.LOWER: str.lower,
        Norm.LOWER_INTERNED: _lower_interned,
        Norm.UPPER: _upper_interned,
        Norm.HOST: partial(_host, name),
        Norm.URL: partial(_url, name),
    }[spec.norm]

    def other(value: object) -> object:
        text = _text(name, value).strip()
        return text if convert is None else convert(text)

    return convert, other


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _url(name: str, text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise RowError(name, f"invalid url: {exc}") from None
    host = parts.hostname
    if not parts.scheme or not host:
        raise RowError(name, "url needs a scheme and a host")
    scheme = parts.scheme.lower()
    netloc = f"[{host}]" if ":" in host else host
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        netloc = f"{userinfo}@{netloc}"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


def _enum(spec: FieldSpec) -> tuple[Converter, Converter]:
    name = spec.name
    canonical = {sys.intern(v): v for v in spec.values}
    expected = ", ".join(sorted(spec.values))

    def convert(s: str) -> str:
        value = canonical.get(s) or canonical.get(s.lower())
        if value is None:
            raise RowError(name, f"unknown value '{printable(s)}' (expected one of: {expected})")
        return value

    def other(value: object) -> str:
        return convert(_text(name, value))

    return convert, other


def _count(spec: FieldSpec) -> tuple[Converter, Converter]:
    name = spec.name

    def checked(value: int | Decimal) -> int:
        if value < 0:
            raise RowError(name, f"must be >= 0, got {printable(str(value))}")
        if value > MAX_INT:
            raise RowError(name, f"too large (max {MAX_INT})")
        return int(value)

    def convert(s: str) -> int:
        digits = s[1:] if s[0] == "-" else s
        if not (digits.isdigit() and digits.isascii()):
            raise RowError(name, f"not an integer: '{printable(s)}'")
        if len(digits) > 19:  # too large either way; int() of huge text is slow
            return checked(Decimal(s))
        return checked(int(s))

    def other(value: object) -> int:
        if type(value) is int:
            return checked(value)
        if isinstance(value, Decimal):
            if not value.is_finite() or value != value.to_integral_value():
                raise RowError(name, f"not an integer: {printable(str(value))}")
            return checked(value)
        raise RowError(name, f"expected an integer, got {_kind(value)}")

    return convert, other


def _bool(spec: FieldSpec) -> tuple[Converter, Converter]:
    name = spec.name

    def convert(s: str) -> bool:
        value = _BOOLS.get(s)
        if value is None:
            value = _BOOLS.get(s.lower())
            if value is None:
                raise RowError(name, f"expected true, false, 1 or 0, got '{printable(s)}'")
        return value

    def other(value: object) -> bool:
        if type(value) is bool:
            return value
        if type(value) is int and value in (0, 1):
            return value == 1
        raise RowError(name, f"expected true, false, 1 or 0, got {_kind(value)}")

    return convert, other


def _datetime(spec: FieldSpec) -> tuple[Converter, Converter]:
    name = spec.name

    def convert(s: str) -> datetime:
        cached = _datetime_cache.get(s)
        if cached is not None:
            return cached
        try:
            value = datetime.fromisoformat(s)
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (ValueError, OverflowError):
            raise RowError(name, f"not an ISO 8601 date or datetime: '{printable(s)}'") from None
        if len(_datetime_cache) >= _CACHE_MAX:
            _datetime_cache.clear()
        _datetime_cache[s] = value
        return value

    def other(value: object) -> datetime:
        raise RowError(name, f"expected an ISO 8601 string, got {_kind(value)}")

    return convert, other


def _items(name: str, value: object) -> list[str]:
    """The stripped, non-empty items of a list field (``;``-separated text or a JSON array)."""
    if isinstance(value, str):
        texts = value.split(";")
    elif type(value) is list:
        texts = []
        for item in value:
            if not isinstance(item, str):
                raise RowError(name, f"expected an array of strings, got {_kind(item)} in it")
            texts.extend(item.split(";"))
    else:
        raise RowError(name, f"expected a string or an array of strings, got {_kind(value)}")
    return [t for t in (text.strip() for text in texts) if t]


def _ip(name: str, text: str) -> str:
    if _IPV4.fullmatch(text):  # already in normalized form
        return text
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        raise RowError(name, f"invalid IP address '{printable(text)}'") from None


def _ip_list(spec: FieldSpec) -> tuple[Converter, Converter]:
    name = spec.name

    def convert(value: object) -> tuple[str, ...]:
        if isinstance(value, str) and ";" not in value:
            return (_ip(name, value),)
        return tuple(dict.fromkeys(_ip(name, text) for text in _items(name, value)))

    return convert, convert


def _modules(spec: FieldSpec) -> tuple[Converter, Converter]:
    """Converter to (known modules, unknown names), both cached per distinct raw value."""
    name = spec.name

    def convert(value: object) -> tuple[frozenset[str], frozenset[str]]:
        key = value if isinstance(value, str) else tuple(_items(name, value))
        cached = _modules_cache.get(key)
        if cached is None:
            texts = _items(name, key) if isinstance(key, str) else key
            names = {text.lower() for text in texts}
            cached = (frozenset(sys.intern(m) for m in names & MODULES), frozenset(names - MODULES))
            if len(_modules_cache) >= _CACHE_MAX:
                _modules_cache.clear()
            _modules_cache[key] = cached
        return cached

    return convert, convert


_FACTORIES: dict[FieldType, Callable[[FieldSpec], tuple[Converter | None, Converter]]] = {
    FieldType.STRING: _string,
    FieldType.ENUM: _enum,
    FieldType.DATETIME: _datetime,
    FieldType.COUNT: _count,
    FieldType.BOOL: _bool,
    FieldType.IP_LIST: _ip_list,
    FieldType.MODULES: _modules,
}

# Rows are built as the positional arguments of Observation (much faster than keywords):
# one slot per dataclass field, then two slots for the row-only fields tenant and source.
_SLOTS: dict[str, int] = {f.name: i for i, f in enumerate(dataclass_fields(Observation))}
_SLOTS["tenant"], _SLOTS["source_field"] = len(_SLOTS), len(_SLOTS) + 1
_ABSENT: Any = object()  # a slot that has no value and no static default
_TEMPLATE: list[Any] = [
    _ABSENT if f.default is MISSING else f.default for f in dataclass_fields(Observation)
] + [None, None]
for _name in ("modules", "has_findings", "ot_level"):  # computed defaults
    _TEMPLATE[_SLOTS[_name]] = _ABSENT
_SOURCE, _DAY, _PATH, _LINE = (_SLOTS[n] for n in ("source", "day", "path", "line"))
_OBSERVED_AT, _ASSET_TYPE, _MODULES = (_SLOTS[n] for n in ("observed_at", "asset_type", "modules"))
_VULN_COUNT, _HAS_FINDINGS, _OT_LEVEL = (
    _SLOTS[n] for n in ("vuln_count", "has_findings", "ot_level")
)

#: name -> (argument slot, converter of a stripped str or None, converter of other values)
_CONVERTERS: dict[str, tuple[int, Converter | None, Converter]] = {
    spec.name: (_SLOTS[spec.target or "source_field"], *_FACTORIES[spec.type](spec))
    for spec in FIELDS
}


@lru_cache(maxsize=256)
def _day_window(day: date) -> tuple[datetime, datetime, datetime]:
    """(default observed_at, first instant allowed, first instant too late) for a file day."""
    midnight = datetime.combine(day, time(), UTC)
    try:
        low = midnight - timedelta(days=1)
    except OverflowError:
        low = datetime.min.replace(tzinfo=UTC)
    try:
        high = midnight + timedelta(days=2)
    except OverflowError:
        high = datetime.max.replace(tzinfo=UTC)
    return midnight, low, high


def _check_text(name: str, value: str, max_chars: int) -> None:
    if len(value) > max_chars:
        raise RowError(name, f"longer than {max_chars} characters")
    if _SURROGATE.search(value):
        raise RowError(name, "not valid UTF-8")


def _check_list(name: str, value: list[object], max_chars: int) -> None:
    """A JSON array counts as its ``;``-joined text for the length limit."""
    for item in value:
        if isinstance(item, str):
            _check_text(name, item, max_chars)
    if sum(len(item) + 1 for item in value if isinstance(item, str)) > max_chars + 1:
        raise RowError(name, f"longer than {max_chars} characters")


def normalize(
    raw: Mapping[str, object],
    ref: FileRef,
    line: int,
    *,
    warnings: RowWarnings | None = None,
    max_field_chars: int = MAX_FIELD_CHARS,
) -> Observation:
    """Validate and normalize one raw row of ``ref``; raise RowError on the first bad field.

    Unknown keys are ignored (the reader reports them); unknown module names are
    added to ``warnings``. Empty (or blank) strings and JSON nulls are absent values.
    """
    args = _TEMPLATE.copy()
    converters = _CONVERTERS
    for name, value in raw.items():
        entry = converters.get(name)
        if entry is None or value is None:
            continue
        slot, convert_str, convert_other = entry
        if type(value) is str:
            if len(value) > max_field_chars or not value.isascii():
                _check_text(name, value, max_field_chars)
            value = value.strip()
            if value:
                args[slot] = value if convert_str is None else convert_str(value)
        else:
            if type(value) is list:
                _check_list(name, value, max_field_chars)
            args[slot] = convert_other(value)
    source = args.pop()
    if source is not None and source.lower() != ref.source:
        raise RowError("source", f"'{printable(source)}' is not the path's source '{ref.source}'")
    tenant = args.pop()
    if tenant is not None and tenant != ref.tenant:
        raise RowError("tenant", f"'{printable(tenant)}' is not the path's tenant '{ref.tenant}'")
    if args[_ASSET_TYPE] is _ABSENT:
        raise RowError("asset_type", "required")
    args[_SOURCE], args[_DAY], args[_PATH], args[_LINE] = ref.source, ref.day, ref.key, line
    midnight, low, high = _day_window(ref.day)
    observed_at = args[_OBSERVED_AT]
    if observed_at is _ABSENT:
        args[_OBSERVED_AT] = midnight
    elif not low <= observed_at < high:
        raise RowError(
            "observed_at",
            f"UTC date {observed_at.date()} is more than one day from the file's date {ref.day}",
        )
    modules = args[_MODULES]
    if modules is _ABSENT:
        args[_MODULES] = frozenset()
    else:
        args[_MODULES], unknown = modules
        if unknown and warnings is not None:
            warnings.unknown_modules.update(unknown)
    vuln_count = args[_VULN_COUNT]
    findings = vuln_count is not None and vuln_count > 0
    if args[_HAS_FINDINGS] is _ABSENT:
        args[_HAS_FINDINGS] = findings
    if args[_OT_LEVEL] is _ABSENT:
        args[_OT_LEVEL] = "vulnerable" if findings else "basic"
    obs = Observation(*args)
    classify(obs)
    return obs


# --- JSON Schema ---


def _caseless(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def _alternatives(spec: FieldSpec, max_chars: int) -> list[dict[str, Any]]:
    text: dict[str, Any] = {"type": "string", "maxLength": max_chars}
    if spec.type is FieldType.STRING:
        return [text, {"type": "number"}]
    if spec.type in (FieldType.ENUM, FieldType.BOOL):
        words = spec.values if spec.type is FieldType.ENUM else frozenset(_BOOLS)
        either = "|".join(_caseless(v) for v in sorted(words))
        optional = "" if spec.required else "?"
        pattern = {**text, "pattern": rf"^\s*(?:{either}){optional}\s*$"}
        if spec.type is FieldType.ENUM:
            return [pattern]
        return [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}, pattern]
    if spec.type is FieldType.DATETIME:
        return [{**text, "pattern": r"^\s*(?:[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ].*)?)?\s*$"}]
    if spec.type is FieldType.COUNT:
        return [
            {"type": "integer", "minimum": 0, "maximum": MAX_INT},
            {**text, "pattern": r"^\s*[0-9]*\s*$"},
        ]
    return [text, {"type": "array", "items": {"type": "string"}}]


def _property(spec: FieldSpec, max_chars: int) -> dict[str, Any]:
    doc = spec.doc
    if spec.type is FieldType.ENUM:
        doc = f"{doc}; one of: {', '.join(sorted(spec.values))} (case-insensitive)"
    alternatives = _alternatives(spec, max_chars)
    if not spec.required:
        alternatives.insert(0, {"type": "null"})
    prop: dict[str, Any] = {"description": doc, "anyOf": alternatives}
    if spec.default is not None:
        prop["default"] = spec.default
    return prop


def row_json_schema(max_field_chars: int = MAX_FIELD_CHARS) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of one inventory row, generated from ``FIELDS``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "qlumeter inventory row (v1)",
        "description": "Unknown keys are ignored; null or a blank string means absent.",
        "type": "object",
        "properties": {spec.name: _property(spec, max_field_chars) for spec in FIELDS},
        "required": [spec.name for spec in FIELDS if spec.required],
        "additionalProperties": True,
    }
