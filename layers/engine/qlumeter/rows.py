"""The row normalizer: one declarative table of the v1 row fields (spec section 3).

``FIELDS`` drives both :func:`normalize` (raw row -> :class:`Observation`; its CSV twin
:func:`normalize_cells` shares the converters) and :func:`row_json_schema`. Raw values
are what a reader produces: CSV cells (``str``) or JSON values parsed with
``parse_float=json_number`` (decimals, exponent forms marked) and
``object_pairs_hook=json_object`` (duplicate keys marked).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache, partial
from itertools import repeat
from socket import AF_INET, inet_pton
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


class ExponentNumber(Decimal):
    """A JSON number written with an exponent (``1E3``): a count may be one, an identifier
    may not (spec section 12: not guessed)."""


def json_number(text: str) -> Decimal:
    """``parse_float`` of the readers: a JSON number with a fraction or an exponent."""
    return ExponentNumber(text) if "e" in text or "E" in text else Decimal(text)


class DuplicateKeys(dict[str, Any]):
    """A JSON object that names a key twice (``duplicates``): never one of its values
    silently, as two CSV columns of one name make a file unreadable."""

    duplicates: set[str]


def json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of the readers: the object, marked when a key repeats."""
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    marked = DuplicateKeys(value)
    counts = Counter(key for key, _ in pairs)
    marked.duplicates = {key for key, count in counts.items() if count > 1}
    return marked


class FieldType(StrEnum):
    """The type of a row field."""

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
    """One v1 row field and how its values are converted."""

    name: str
    type: FieldType
    doc: str
    attr: str = ""  # the Observation attribute when not ``name``
    values: frozenset[str] = frozenset()  # enums
    norm: Norm = Norm.AS_WRITTEN  # strings
    default: str | None = None  # static defaults; computed ones are described in ``doc``
    required: bool = False
    path_check: bool = False  # not stored: must equal the path's segment of the same name

    @property
    def memoized(self) -> bool:
        """Whether values repeat enough to cache their conversion."""
        return self.type not in (FieldType.STRING, FieldType.IP_LIST) or self.norm in (
            Norm.INTERNED,
            Norm.LOWER_INTERNED,
            Norm.UPPER,
        )


_S, _E, _D = FieldType.STRING, FieldType.ENUM, FieldType.DATETIME

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("tenant", _S, "must equal the path's tenant= when present", path_check=True),
    FieldSpec(
        "source", _S, "must equal the path's source= when present", norm=Norm.LOWER, path_check=True
    ),
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

_SEPARATORS = str.maketrans("", "", "_- .")


def _folded(name: str) -> str:
    """A name without case and separators: ``Asset-Type`` and ``asset_type`` agree."""
    return name.lower().translate(_SEPARATORS)


_FOLDED_FIELDS = {_folded(name): name for name in sorted(FIELD_NAMES)}


def closest_field(name: str) -> str | None:
    """The row field an unknown column or key most likely means: the same name but for
    case and ``_``, ``-``, ``.`` or blanks; else one a small edit away (``staus``,
    ``module``) or the only field its stem begins (``vulns``: ``vuln_count``), for names
    of four characters or more."""
    folded = _folded(name)
    if folded in _FOLDED_FIELDS:
        return _FOLDED_FIELDS[folded]
    if len(folded) < 4:  # too short to guess from
        return None
    close = difflib.get_close_matches(folded, _FOLDED_FIELDS, n=1, cutoff=0.8)
    if close:
        return _FOLDED_FIELDS[close[0]]
    stem = folded.removesuffix("s")
    begun = [field for key, field in _FOLDED_FIELDS.items() if key.startswith(stem)]
    return begun[0] if len(stem) >= 4 and len(begun) == 1 else None


def unknown_names(names: set[str], limit: int = 20) -> str:
    """Unknown columns or keys for a warning, each with the field it may mean."""
    shown = []
    for name in sorted(names)[:limit]:
        near = closest_field(name)
        text = printable(name)
        if not text.isprintable():  # control characters (a file in another encoding)
            text = name[:64].encode("unicode_escape").decode("ascii")
        shown.append(text + (f" (did you mean `{near}`?)" if near else ""))
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(shown) + more


_PROBES: dict[FieldType, object] = {
    FieldType.STRING: "x.example",
    FieldType.IP_LIST: ("192.0.2.1",),
}


def keyless_types(header: Iterable[str], source: str) -> dict[str, RowError]:
    """The asset types no row of which can be kept under a CSV header of ``source``: the
    columns their key needs are missing (section 4). Found by classifying a row of each
    type with every string column of the header filled."""
    present = set(header)
    values: dict[str, object] = {"cloud_provider": "aws"} if "cloud_provider" in present else {}
    for spec in FIELDS:
        if spec.name in present and spec.type in _PROBES and not spec.path_check:
            values[spec.attr or spec.name] = _PROBES[spec.type]
    keyless: dict[str, RowError] = {}
    for asset_type in sorted(ASSET_TYPES):
        probe = Observation(source, date.min, "", 0, datetime.min, asset_type, **values)  # type: ignore[arg-type]
        try:
            classify(probe)
        except RowError as exc:
            if exc.field != "asset_type":  # not a type of the source: told row by row
                keyless[asset_type] = exc
    return keyless


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


# --- converters ---
# A field compiles to (argument slot, memo, str converter, converter of other JSON values).
# The str converter gets a stripped non-empty str (None: kept as written). The memo of a
# field whose values repeat (enums, times, counts, module lists...) maps raw text to what
# the row's argument becomes: the converted value, or the field's default for a blank text.
# A repeated value costs one dict lookup.

Converter = Callable[[Any], Any]
_Compiled = tuple[int, "dict[str, Any] | None", "Converter | None", Converter]

_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL = "\x00"
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_JSON_TYPES = {bool: "a boolean", list: "an array", dict: "an object", int: "a number"}
_MEMO_MAX = 4096
_MISS: Any = object()  # not in a memo
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _kind(value: object) -> str:
    return _JSON_TYPES.get(type(value), "a number" if isinstance(value, Decimal) else "a value")


def _memo_miss(memo: dict[str, Any], convert: Converter | None, blank: Any, raw: str) -> Any:
    """Convert a text that is not in the memo as written (``blank`` when it is blank), and
    remember it as written and stripped."""
    text = raw.strip()
    value = memo.get(text, _MISS) if text else blank
    if value is _MISS:
        value = text if convert is None else convert(text)
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[text] = memo[raw] = value
    return value


def _host(name: str, text: str) -> str:
    host = (text if text.islower() else text.lower()).removesuffix(".")
    if not host:
        raise RowError(name, "empty name")
    return host


def _lower_interned(text: str) -> str:
    return sys.intern(text.lower())


def _upper_interned(text: str) -> str:
    return sys.intern(text.upper())


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
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}{query}"


def _string(spec: FieldSpec) -> Converter | None:
    return {
        Norm.AS_WRITTEN: None,
        Norm.INTERNED: sys.intern,
        Norm.LOWER: str.lower,
        Norm.LOWER_INTERNED: _lower_interned,
        Norm.UPPER: _upper_interned,
        Norm.HOST: partial(_host, spec.name),
        Norm.URL: partial(_url, spec.name),
    }[spec.norm]


def _enum(spec: FieldSpec) -> Converter:
    name = spec.name
    canonical = {v.lower(): v for v in spec.values}
    expected = ", ".join(sorted(spec.values))

    def convert(text: str) -> str:
        value = canonical.get(text.lower())
        if value is None:
            raise RowError(name, f"unknown value '{printable(text)}' (expected one of: {expected})")
        return value

    return convert


def _checked_count(name: str, value: int | Decimal) -> int:
    if value < 0:
        raise RowError(name, f"must be >= 0, got {printable(str(value))}")
    if value > MAX_INT:
        raise RowError(name, f"too large (max {MAX_INT})")
    return int(value)


def _count(spec: FieldSpec) -> Converter:
    name = spec.name

    def convert(text: str) -> int:
        digits = text[1:] if text[0] == "-" else text
        if not (digits.isdigit() and digits.isascii()):
            raise RowError(name, f"not an integer: '{printable(text)}'")
        # Long digit strings go through Decimal: int() is limited to 4300 digits.
        return _checked_count(name, int(text) if len(digits) < 19 else Decimal(text))

    return convert


def _json_count(name: str, value: object) -> int:
    if type(value) is int:
        return _checked_count(name, value)
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise RowError(name, f"not an integer: {printable(str(value))}")
        return _checked_count(name, value)
    raise RowError(name, f"expected an integer, got {_kind(value)}")


def _bool(spec: FieldSpec) -> Converter:
    name = spec.name

    def convert(text: str) -> bool:
        value = _BOOLS.get(text.lower())
        if value is None:
            raise RowError(name, f"expected true, false, 1 or 0, got '{printable(text)}'")
        return value

    return convert


def _json_bool(name: str, value: object) -> bool:
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return value == 1
    raise RowError(name, f"expected true, false, 1 or 0, got {_kind(value)}")


def _datetime(spec: FieldSpec) -> Converter:
    name = spec.name

    def convert(text: str) -> datetime:
        try:
            value = datetime.fromisoformat(text)
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (ValueError, OverflowError):
            raise RowError(name, f"not an ISO 8601 date or datetime: '{printable(text)}'") from None

    return convert


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
    try:  # the common case: a dotted quad accepted by inet_pton is in normalized form
        inet_pton(AF_INET, text)
        return text
    except (OSError, ValueError):
        pass
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        raise RowError(name, f"invalid IP address '{printable(text)}'") from None


def _ip_list(spec: FieldSpec) -> Converter:
    """Converter of ``;``-separated text or a JSON array to distinct IPs, in order."""
    name = spec.name

    def convert(value: object) -> tuple[str, ...]:
        if isinstance(value, str) and ";" not in value:
            return (_ip(name, value),)
        return tuple(dict.fromkeys(_ip(name, text) for text in _items(name, value)))

    return convert


def _modules(spec: FieldSpec) -> Converter:
    """Converter of ``;``-separated text to (known modules, unknown names)."""
    name = spec.name

    def convert(text: str) -> tuple[frozenset[str], frozenset[str]]:
        names = {item.lower() for item in _items(name, text)}
        return frozenset(sys.intern(n) for n in names & MODULES), frozenset(names - MODULES)

    return convert


# Column converters take a whole CSV column of stripped, non-blank texts in C loops: the
# fields whose values do not repeat (the memo serves the others) and whose common form is
# simple. None when a text needs the field's converter, which then runs cell by cell.
ColumnConverter = Callable[[list[str]], "list[Any] | None"]


def _host_column(texts: list[str]) -> list[str] | None:
    """:func:`_host` of each text; None when one is a lone dot."""
    hosts = list(map(str.removesuffix, map(str.lower, texts), repeat(".")))
    return None if "" in hosts else hosts


def _ipv4_column(texts: list[str]) -> list[tuple[str, ...]] | None:
    """The IP lists of texts that are each one IPv4 address in dotted-quad form (see _ip)."""
    try:
        list(map(inet_pton, repeat(AF_INET), texts))
    except (OSError, ValueError):
        return None
    return list(zip(texts))  # one-address tuples


def _column_converter(spec: FieldSpec) -> ColumnConverter | None:
    if spec.type is FieldType.IP_LIST:
        return _ipv4_column
    if spec.type is FieldType.STRING and spec.norm is Norm.HOST:
        return _host_column
    return None


_CONVERTERS: dict[FieldType, Callable[[FieldSpec], Converter | None]] = {
    FieldType.STRING: _string,
    FieldType.ENUM: _enum,
    FieldType.DATETIME: _datetime,
    FieldType.COUNT: _count,
    FieldType.BOOL: _bool,
    FieldType.IP_LIST: _ip_list,
    FieldType.MODULES: _modules,
}


def _compile(spec: FieldSpec, slot: int) -> _Compiled:
    name, kind = spec.name, spec.type
    convert = _CONVERTERS[kind](spec)
    memo: dict[str, Any] | None = {} if spec.memoized else None

    def from_text(text: str) -> Any:
        if memo is not None:
            value = memo.get(text, _MISS)
            return value if value is not _MISS else _memo_miss(memo, convert, _TEMPLATE[slot], text)
        return text if convert is None else convert(text)

    def other(value: object) -> Any:
        """Convert a JSON value other than a string."""
        if kind is FieldType.COUNT:
            return _json_count(name, value)
        if kind is FieldType.BOOL:
            return _json_bool(name, value)
        if kind is FieldType.IP_LIST:
            return convert(value)  # type: ignore[misc]
        if kind is FieldType.MODULES:
            return from_text(";".join(_items(name, value)))
        if kind is FieldType.DATETIME:
            raise RowError(name, f"expected an ISO 8601 string, got {_kind(value)}")
        if kind is FieldType.STRING and type(value) is ExponentNumber:
            raise RowError(name, f"a number in exponent form ({value}): write it as a string")
        if type(value) is int or isinstance(value, Decimal):  # a number is taken as its text
            return from_text(str(value))
        raise RowError(name, f"expected a string, got {_kind(value)}")

    return slot, memo, convert, other


# Rows are built as the positional arguments of Observation (much faster than keywords):
# one slot per dataclass field, then the slots of the path-checked fields tenant, source.
_OBS_FIELDS = dataclass_fields(Observation)
_SLOTS = {f.name: i for i, f in enumerate(_OBS_FIELDS)}
_PATH_SLOTS = {"tenant": len(_SLOTS), "source": len(_SLOTS) + 1}
_ABSENT: Any = object()  # no value and no static default
_NO_MODULES: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())  # known, unknown
_TEMPLATE: list[Any] = [_ABSENT if f.default is MISSING else f.default for f in _OBS_FIELDS]
_TEMPLATE += [None, None]
for _name in ("modules", "has_findings", "ot_level"):  # computed defaults
    _TEMPLATE[_SLOTS[_name]] = _ABSENT
_SOURCE, _DAY, _PATH, _LINE, _OBSERVED_AT, _ASSET_TYPE, _MODULES, _VULNS, _FINDINGS, _OT = (
    _SLOTS[n]
    for n in (
        "source",
        "day",
        "path",
        "line",
        "observed_at",
        "asset_type",
        "modules",
        "vuln_count",
        "has_findings",
        "ot_level",
    )
)
_COLUMN_CONVERTERS = {spec.name: c for spec in FIELDS if (c := _column_converter(spec))}
_FIELD_TABLE: dict[str, _Compiled] = {
    spec.name: _compile(
        spec, _PATH_SLOTS[spec.name] if spec.path_check else _SLOTS[spec.attr or spec.name]
    )
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
    if _NUL in value:
        raise RowError(name, "NUL character (U+0000)")


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
    table = _FIELD_TABLE
    for name, value in raw.items():
        entry = table.get(name)
        if entry is None or value is None:
            continue
        slot, memo, convert, other = entry
        if type(value) is str:
            if len(value) > max_field_chars or not value.isascii() or _NUL in value:
                _check_text(name, value, max_field_chars)
            if memo is not None:
                converted = memo.get(value, _MISS)
                if converted is _MISS:
                    converted = _memo_miss(memo, convert, _TEMPLATE[slot], value)
                args[slot] = converted
            else:
                value = value.strip()
                if value:
                    args[slot] = value if convert is None else convert(value)
        else:
            if type(value) is list:
                _check_list(name, value, max_field_chars)
            args[slot] = other(value)
    return _observation(args, ref, line, warnings)


#: The known columns of a CSV header: (name, cell index, slot, memo or None, converter:
#: of a text missing from the memo, or of any text when there is no memo; column converter).
Column = tuple[str, int, int, "dict[str, Any] | None", "Converter | None", "ColumnConverter | None"]
Columns = tuple[Column, ...]


def csv_columns(header: Sequence[str]) -> Columns:
    """Compile a CSV header for :func:`normalize_cells` (unknown columns are left out)."""
    columns: list[Column] = []
    for index, name in enumerate(header):
        if name in _FIELD_TABLE:
            slot, memo, convert, _ = _FIELD_TABLE[name]
            if memo is None:
                columns.append((name, index, slot, None, convert, _COLUMN_CONVERTERS.get(name)))
            else:
                miss = partial(_memo_miss, memo, convert, _TEMPLATE[slot])
                columns.append((name, index, slot, memo, miss, None))
    return tuple(columns)


def normalize_cells(
    columns: Columns,
    cells: Sequence[str],
    ref: FileRef,
    line: int,
    *,
    warnings: RowWarnings | None = None,
    max_field_chars: int = MAX_FIELD_CHARS,
    checked: bool = False,
) -> Observation:
    """:func:`normalize` of ``dict(zip(header, cells))``, faster, for CSV rows.

    ``checked``: the caller knows every cell is ASCII and at most ``max_field_chars`` long.
    """
    if not checked:
        for name, index, *_ in columns:
            value = cells[index]
            if len(value) > max_field_chars or not value.isascii() or _NUL in value:
                _check_text(name, value, max_field_chars)
    args = _TEMPLATE.copy()
    for _name, index, slot, memo, convert, _ in columns:
        value = cells[index]
        if not value:
            continue
        if memo is not None:
            converted = memo.get(value, _MISS)
            if converted is _MISS:
                converted = convert(value)  # type: ignore[misc]
            args[slot] = converted
        else:
            value = value.strip()
            if value:
                args[slot] = value if convert is None else convert(value)
    return _observation(args, ref, line, warnings)


def normalize_rows(
    columns: Columns,
    rows: Sequence[Sequence[str]],
    lines: Sequence[int],
    ref: FileRef,
    *,
    warnings: RowWarnings | None = None,
    max_field_chars: int = MAX_FIELD_CHARS,
    checked: bool = False,
) -> list[Observation | RowError]:
    """:func:`normalize_cells` of each of ``rows`` (at ``lines``), column by column.

    The outcome of every row (its observation or its error) and the warnings are those of
    :func:`normalize_cells`, but the work is done over whole columns in loops that run in C
    (memo lookups, strips, minimum and maximum): a row costs little more than building and
    classifying its ``Observation``. As in normalize_cells, every cell is checked before
    any is converted, column after column, so the first failure met in a row is the one
    normalize_cells raises. A row that fails a row check (:func:`_check_rows`), or a cell
    with an exception other than RowError, is handed to normalize_cells.
    """
    if not rows:
        return []
    cells_of = list(zip(*rows, strict=True))
    failed: Failures = {}
    if not checked:
        for name, index, *_ in columns:
            _check_column(name, cells_of[index], max_field_chars, failed)
    given: dict[int, list[Any]] = {}  # slot -> the values of a column, in row order
    for _name, index, slot, memo, convert, column in columns:
        blank = _TEMPLATE[slot]
        given[slot] = _convert_column(cells_of[index], memo, convert, column, blank, failed)
    refused = _check_rows(given, ref, len(rows))
    args, unknown_modules = _arguments(given, ref, lines)
    if warnings is not None and any(unknown_modules):
        for index, names in enumerate(unknown_modules):
            if names and index not in failed and index not in refused:
                warnings.unknown_modules.update(names)
    redo = refused.union(index for index, failure in failed.items() if failure is None)
    outcomes: list[Observation | RowError] = []
    append = outcomes.append
    for index, obs in enumerate(map(Observation, *args)):
        failure = failed.get(index)
        if failure is not None:
            append(failure)
            continue
        try:
            if index in redo:
                obs = normalize_cells(
                    columns,
                    rows[index],
                    ref,
                    lines[index],
                    warnings=warnings,
                    max_field_chars=max_field_chars,
                    checked=checked,
                )
            else:
                classify(obs)
        except RowError as exc:  # kept without its traceback, which holds this frame
            append(RowError(exc.field, exc.reason))
        else:
            append(obs)
    return outcomes


#: The rows of a batch whose cells failed: the first RowError met (checks, then
#: conversions, column after column), or None for another exception, which normalize_cells
#: then meets again. Errors are kept without their tracebacks (they hold the batch).
Failures = dict[int, "RowError | None"]


def _fail(failed: Failures, index: int, exc: Exception) -> None:
    if index not in failed:
        failed[index] = RowError(exc.field, exc.reason) if isinstance(exc, RowError) else None


def _check_column(name: str, cells: Sequence[str], max_chars: int, failed: Failures) -> None:
    """:func:`_check_text` of every cell of a column."""
    if (
        max(map(len, cells)) > max_chars
        or not all(map(str.isascii, cells))
        or _NUL in "".join(cells)
    ):
        for index, cell in enumerate(cells):
            try:
                _check_text(name, cell, max_chars)
            except RowError as exc:
                _fail(failed, index, exc)


def _convert_column(
    cells: Sequence[str],
    memo: dict[str, Any] | None,
    convert: Converter | None,
    column: ColumnConverter | None,
    blank: Any,
    failed: Failures,
) -> list[Any]:
    """The row values of a column's cells, ``blank`` for a blank cell (and a failed one)."""
    if memo is not None:
        try:
            return list(map(memo.__getitem__, cells))  # every text seen before
        except KeyError:
            values = list(map(memo.get, cells, repeat(_MISS)))
        for index, value in enumerate(values):
            if value is _MISS:
                values[index] = _convert_cell(convert, cells[index], index, blank, failed)  # type: ignore[arg-type]
        return values
    texts = list(map(str.strip, cells))
    if convert is None:
        return texts if "" not in texts else [text or blank for text in texts]
    if column is not None and "" not in texts:
        converted = column(texts)
        if converted is not None:
            return converted
    try:
        return [convert(text) if text else blank for text in texts]
    except Exception:  # a cell it refuses: found cell by cell
        return [
            _convert_cell(convert, text, index, blank, failed) if text else blank
            for index, text in enumerate(texts)
        ]


def _convert_cell(convert: Converter, text: str, index: int, blank: Any, failed: Failures) -> Any:
    try:
        return convert(text)
    except Exception as exc:  # whatever it is, as normalize_cells would meet it
        _fail(failed, index, exc)
        return blank


def _arguments(
    given: dict[int, list[Any]], ref: FileRef, lines: Sequence[int]
) -> tuple[list[Iterable[Any]], Sequence[frozenset[str]]]:
    """The positional arguments of the rows' observations, column by column, with the
    defaults :func:`_observation` gives; and the unknown module names of each row."""
    count = len(lines)
    args: list[Iterable[Any]] = [
        given.get(slot) or repeat(default, count)
        for slot, default in enumerate(_TEMPLATE[: len(_OBS_FIELDS)])
    ]
    args[_SOURCE], args[_DAY], args[_PATH] = (
        repeat(v, count) for v in (ref.source, ref.day, ref.key)
    )
    args[_LINE] = lines
    args[_OBSERVED_AT] = _defaulted(given.get(_OBSERVED_AT), [_day_window(ref.day)[0]] * count)
    modules = _defaulted(given.get(_MODULES), [_NO_MODULES] * count)
    args[_MODULES], unknown = zip(*modules, strict=True)
    # A vuln_count is None or an int >= 0: bool(vuln_count) is "vuln_count > 0".
    findings = list(map(bool, given.get(_VULNS) or repeat(None, count)))
    args[_FINDINGS] = _defaulted(given.get(_FINDINGS), findings)
    args[_OT] = _defaulted(given.get(_OT), ["vulnerable" if f else "basic" for f in findings])
    return args, unknown


def _defaulted(values: list[Any] | None, defaults: list[Any]) -> list[Any]:
    """A column's values, or ``defaults`` where it has none (or where there is no column)."""
    if values is None:
        return defaults
    if _ABSENT not in values:
        return values
    return [d if v is _ABSENT else v for v, d in zip(values, defaults, strict=True)]


def _check_rows(given: dict[int, list[Any]], ref: FileRef, count: int) -> set[int]:
    """The rows that :func:`_observation` refuses: a tenant or source that is not the
    path's, no asset type, an observed_at more than one day from the file's date."""
    refused: set[int] = set()
    for slot, expected in (
        (_PATH_SLOTS["source"], ref.source),
        (_PATH_SLOTS["tenant"], ref.tenant),
    ):
        values = given.get(slot)
        if values is not None:
            refused.update(i for i, value in enumerate(values) if value not in (None, expected))
    types = given.get(_ASSET_TYPE)
    if types is None:
        refused.update(range(count))
    elif _ABSENT in types:
        refused.update(i for i, value in enumerate(types) if value is _ABSENT)
    times = given.get(_OBSERVED_AT)
    if times is not None:
        _, low, high = _day_window(ref.day)
        present = times if _ABSENT not in times else [t for t in times if t is not _ABSENT]
        if present and not (low <= min(present) and max(present) < high):
            refused.update(
                i for i, t in enumerate(times) if t is not _ABSENT and not low <= t < high
            )
    return refused


def _observation(
    args: list[Any], ref: FileRef, line: int, warnings: RowWarnings | None
) -> Observation:
    """Check the row against its path, apply the computed defaults, build and classify."""
    row_source = args.pop()
    if row_source is not None and row_source != ref.source:
        raise RowError(
            "source", f"'{printable(row_source)}' is not the path's source '{ref.source}'"
        )
    row_tenant = args.pop()
    if row_tenant is not None and row_tenant != ref.tenant:
        raise RowError(
            "tenant", f"'{printable(row_tenant)}' is not the path's tenant '{ref.tenant}'"
        )
    if args[_ASSET_TYPE] is _ABSENT:
        raise RowError("asset_type", "required")
    day = ref.day
    args[_SOURCE], args[_DAY], args[_PATH], args[_LINE] = ref.source, day, ref.key, line
    midnight, low, high = _day_window(day)
    observed_at = args[_OBSERVED_AT]
    if observed_at is _ABSENT:
        args[_OBSERVED_AT] = midnight
    elif not low <= observed_at < high:
        raise RowError(
            "observed_at",
            f"UTC date {observed_at.date()} is more than one day from the file's date {day}",
        )
    modules = args[_MODULES]
    if modules is _ABSENT:
        args[_MODULES] = frozenset()
    else:
        args[_MODULES], unknown = modules
        if unknown and warnings is not None:
            warnings.unknown_modules.update(unknown)
    vuln_count = args[_VULNS]
    findings = vuln_count is not None and vuln_count > 0
    if args[_FINDINGS] is _ABSENT:
        args[_FINDINGS] = findings
    if args[_OT] is _ABSENT:
        args[_OT] = "vulnerable" if findings else "basic"
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
