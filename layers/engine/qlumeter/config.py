"""The subscription: a tenant's metering configuration (spec sections 2 and 11).

Loaded from JSON or YAML with every number kept as an exact ``Decimal``: binary floats
are never accepted. Any problem raises ``ConfigError`` with one line naming the key path.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Hashable, Mapping
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from .paths import DAY_PATTERN, TENANT_ID_PATTERN, UNATTRIBUTED
from .vocabulary import FED_HIGH_PRODUCTS, PRODUCT_CODES, SOURCES
from .windows import HORIZON_DAYS


def _not_reserved(text: str) -> str:
    if text == UNATTRIBUTED:
        raise ValueError(f"{UNATTRIBUTED!r} is reserved (messages about objects of no tenant)")
    return text


#: A subscription id wherever one is parsed (the subscription, the functions' events).
TenantId = Annotated[
    str, Field(pattern=f"^{TENANT_ID_PATTERN.pattern}$"), AfterValidator(_not_reserved)
]
SourceMode = Literal["snapshot", "delta"]
Plan = Literal["enterprise", "express_lite", "express", "custom"]
SubscriptionType = Literal["standard", "consultant"]

#: The caps each fixed plan puts in force (section 11); ``custom`` brings its own.
PLAN_CAPS: Mapping[str, Mapping[str, int]] = {
    "enterprise": {},
    "express_lite": {"ip_addresses": 256, "web_apps": 25},
    "express": {"ip_addresses": 3072, "web_apps": 100},
}

#: Bounds on a subscription: it is stored as one item and read by every run.
MAX_THRESHOLDS = 20  # alert_thresholds
MAX_OWN_NETWORKS = 256  # own_networks: each scanner address of a day is checked against all
MAX_DAYS = 3660  # any number of days (ten years)
MAX_COUNT = 2**63 - 1  # a cap
MAX_DIGITS = 60  # significant digits of a decimal
MAX_MAGNITUDE = 30  # its magnitude: 10^-30 to 10^30
MAX_DECIMAL_CHARS = 64  # a decimal written as text
MAX_PROBLEMS = 10  # problems named in one error message
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class ConfigError(ValueError):
    """An invalid subscription: one line naming the key path and the reason."""


def _to_decimal(value: object) -> Decimal:
    """Read a finite Decimal from a Decimal, an int or decimal text; never a bool or float."""
    if isinstance(value, bool):
        raise ValueError("expected a decimal number, not a boolean")
    if isinstance(value, float):
        raise ValueError("binary floats are not accepted; write the number as a decimal string")
    if isinstance(value, str):
        if len(value) > MAX_DECIMAL_CHARS:
            raise ValueError(f"a decimal of more than {MAX_DECIMAL_CHARS} characters")
        if not _DECIMAL_TEXT.fullmatch(value):
            raise ValueError(f"{value!r} is not a decimal number")
        value = Decimal(value)
    elif isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise ValueError(f"expected a decimal number, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    if len(value.as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"more than {MAX_DIGITS} digits")
    if abs(value.adjusted()) > MAX_MAGNITUDE:
        raise ValueError(f"a magnitude beyond 10^{MAX_MAGNITUDE} or below 10^-{MAX_MAGNITUDE}")
    return value


def _to_date(value: object) -> object:
    """Read a date from a ``date`` or ``YYYY-MM-DD`` text; a date-time is rejected."""
    if isinstance(value, datetime):
        raise ValueError("expected a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, str):
        if not DAY_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
        return date.fromisoformat(value)
    return value


def _sequence(most: int) -> BeforeValidator:
    """Accept a list (or tuple) of at most ``most`` entries, stored as a tuple; a longer one
    is refused before any entry is read."""

    def to_tuple(value: object) -> tuple[object, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, not {type(value).__name__}")
        if len(value) > most:
            raise ValueError(f"at most {most} entries, not {len(value)}")
        return tuple(value)

    return BeforeValidator(to_tuple)


def _to_network(value: object) -> IPv4Network | IPv6Network:
    """Parse one CIDR entry (host bits allowed and cleared)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a CIDR string, not {type(value).__name__}")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid CIDR") from None


def _known_product(code: str) -> str:
    if code not in PRODUCT_CODES:
        raise ValueError(unknown_product(code))
    return code


def unknown_product(code: str) -> str:
    """The message about a product code that is not in the catalog."""
    return f"unknown product code {code!r}; the codes are: {', '.join(PRODUCT_CODES)}"


def _product_codes(value: object) -> object:
    """Product codes written in any case, as the catalog writes them (``vmdr``: ``VMDR``);
    a code listed twice is an error."""
    if not isinstance(value, Mapping):
        return value
    codes: dict[object, object] = {}
    for key, terms in value.items():
        code = key.upper() if isinstance(key, str) and key.upper() in PRODUCT_CODES else key
        if code in codes:
            raise ValueError(f"product {code} listed twice")
        codes[code] = terms
    return codes


def _known_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    return source


def _sorted_unique(values: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
    """Sort thresholds ascending; equal values (0.8 and 0.80) are a duplicate."""
    ordered = sorted(values)
    duplicates = sorted({str(a) for a, b in pairwise(ordered) if a == b})
    if duplicates:
        raise ValueError(f"duplicate threshold {', '.join(duplicates)}")
    return tuple(ordered)


ExactDecimal = Annotated[Decimal, BeforeValidator(_to_decimal)]
PositiveDecimal = Annotated[ExactDecimal, Field(gt=0)]
IsoDate = Annotated[date, BeforeValidator(_to_date)]
ProductCode = Annotated[str, AfterValidator(_known_product)]
SourceName = Annotated[str, AfterValidator(_known_source)]
Network = Annotated[IPv4Network | IPv6Network, BeforeValidator(_to_network)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ProductTerms(_Model):
    """One licensed product: QLUs per unit and the optional activation day."""

    ratio: PositiveDecimal
    active_from: IsoDate | None = None


class SourceTerms(_Model):
    """How a source's files are read (section 5)."""

    mode: SourceMode


class PurgeRules(_Model):
    """Section 6."""

    enabled: bool = False
    inactive_days: int = Field(default=30, ge=1, le=MAX_DAYS)
    terminated_days: int = Field(default=0, ge=0, le=MAX_DAYS)


class ContainerSettings(_Model):
    """CS node liveness: a node is inactive after ``missed_heartbeats`` missed periods."""

    heartbeat_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)
    missed_heartbeats: int = Field(default=3, ge=1, le=1000)


class Rounding(_Model):
    """Rounding of utilization before the ratio, and of QLUs."""

    utilization: Literal["half_up", "exact"] = "half_up"
    qlu: Literal["exact", "half_up"] = "exact"


class Caps(_Model):
    """The caps of a ``custom`` plan; at least one is set."""

    ip_addresses: Annotated[int, Field(ge=1, le=MAX_COUNT)] | None = None
    web_apps: Annotated[int, Field(ge=1, le=MAX_COUNT)] | None = None


class Subscription(_Model):
    """A tenant's subscription, validated; build it with ``parse_subscription``."""

    subscription_id: TenantId
    start_date: IsoDate
    end_date: IsoDate | None = None
    fed_high: bool = False
    products: Annotated[
        dict[ProductCode, ProductTerms], BeforeValidator(_product_codes), Field(min_length=1)
    ]
    sources: dict[SourceName, SourceTerms] = Field(default_factory=dict)
    snapshot_carry_days: int = Field(default=3, ge=0, le=MAX_DAYS)
    entitlement_qlus: Annotated[ExactDecimal, Field(ge=0)] | None = None
    alert_thresholds: Annotated[
        tuple[PositiveDecimal, ...],
        _sequence(MAX_THRESHOLDS),
        AfterValidator(_sorted_unique),
    ] = (Decimal("0.8"), Decimal("1.0"))
    purge_rules: PurgeRules = Field(default_factory=PurgeRules)
    container: ContainerSettings = Field(default_factory=ContainerSettings)
    fim_event_window_days: int = Field(default=30, ge=1, le=MAX_DAYS)
    image_scan_dedupe_hours: int = Field(default=24, ge=0, le=MAX_DAYS * 24)
    late_data_days: int = Field(default=30, ge=0, le=MAX_DAYS)
    rounding: Rounding = Field(default_factory=Rounding)
    #: A ``forecast_alert`` when a threshold is projected to be reached within this many
    #: days (at most the forecast's horizon); None: no forecast alerts.
    forecast_alert_days: int | None = Field(default=None, ge=1, le=HORIZON_DAYS)
    plan: Plan = "enterprise"
    caps: Caps | None = None
    subscription_type: SubscriptionType = "standard"
    own_networks: Annotated[tuple[Network, ...], _sequence(MAX_OWN_NETWORKS)] = ()
    #: Refuse (quarantine) an inventory file whose reading gave a warning, rather than
    #: count its rows without the columns, keys or modules it names that are not known.
    strict: bool = False

    @model_validator(mode="after")
    def _check_cross_field_rules(self) -> Subscription:
        problems: list[str] = []
        if self.end_date is not None and self.end_date < self.start_date:
            problems.append(f"end_date: {self.end_date} is before start_date {self.start_date}")
        for code, terms in self.products.items():
            if code in FED_HIGH_PRODUCTS and not self.fed_high:
                problems.append(f"products.{code}: {code} requires fed_high: true")
            active_from = terms.active_from
            if active_from is None:
                continue
            if active_from < self.start_date:
                problems.append(
                    f"products.{code}.active_from: {active_from} is before"
                    f" start_date {self.start_date}"
                )
            if self.end_date is not None and active_from > self.end_date:
                problems.append(
                    f"products.{code}.active_from: {active_from} is after end_date {self.end_date}"
                )
        if self.caps is not None and self.plan != "custom":
            problems.append(f"caps: only allowed with plan: custom (plan is {self.plan})")
        elif self.caps is None and self.plan == "custom":
            problems.append("caps: required with plan: custom")
        elif self.caps is not None and self.caps.ip_addresses is self.caps.web_apps is None:
            problems.append("caps: set at least one of ip_addresses, web_apps")
        if self.subscription_type == "consultant" and not self.own_networks:
            problems.append("own_networks: required (non-empty) with subscription_type: consultant")
        if self.subscription_type != "consultant" and self.own_networks:
            problems.append("own_networks: only allowed with subscription_type: consultant")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def mode(self, source: str) -> SourceMode:
        """The source's mode; ``snapshot`` unless configured."""
        terms = self.sources.get(source)
        return terms.mode if terms is not None else "snapshot"

    def product_start(self, code: str) -> date:
        """The day a listed product starts: its ``active_from``, else ``start_date``."""
        return self.products[code].active_from or self.start_date

    def plan_caps(self) -> dict[str, int]:
        """The caps in force, by measure (``ip_addresses``, ``web_apps``); none: ``{}``."""
        if self.caps is not None:  # only a custom plan has caps
            return self.caps.model_dump(exclude_none=True)
        return dict(PLAN_CAPS[self.plan])

    def to_json_dict(self) -> dict[str, Any]:
        """Every key, JSON-ready (decimals as strings, dates ISO); parses back equal."""
        return self.model_dump(mode="json")


def _path_part(part: str | int) -> str:
    """One step of a key path; odd keys quoted so the message stays on one line."""
    if isinstance(part, int) or part.isprintable():
        return str(part)
    return repr(part)


def _message(exc: ValidationError) -> str:
    """Pydantic's errors as ``key.path: reason``, joined with ``; `` on one line."""
    parts = []
    errors = exc.errors()
    for error in errors[:MAX_PROBLEMS]:
        path = ".".join(_path_part(part) for part in error["loc"] if part != "[key]")
        if error["type"] == "extra_forbidden":
            reason = "unknown key"
        elif error["type"] == "value_error":
            reason = str(error["ctx"]["error"])
        else:
            reason = error["msg"][:1].lower() + error["msg"][1:]
        parts.append(f"{path}: {reason}" if path else reason)
    if len(errors) > MAX_PROBLEMS:
        parts.append(f"and {len(errors) - MAX_PROBLEMS} more problems")
    return "; ".join(parts)


def parse_subscription(data: Mapping[str, Any]) -> Subscription:
    """Validate a subscription mapping (as read from JSON or YAML)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"top level must be a mapping, not {type(data).__name__}")
    try:
        return Subscription.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_message(exc)) from None


class _ExactLoader(yaml.SafeLoader):
    """Safe YAML whose floats are Decimals of their written text; duplicate keys rejected."""

    def construct_exact_float(self, node: yaml.ScalarNode) -> Decimal:
        text = self.construct_scalar(node).replace("_", "")
        if not _DECIMAL_TEXT.fullmatch(text):
            raise yaml.constructor.ConstructorError(
                None, None, f"{text!r} is not a finite decimal number", node.start_mark
            )
        return Decimal(text)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _ExactLoader.construct_exact_float)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _yaml_reason(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem or exc.context} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def load_subscription(path: str | Path) -> Subscription:
    """Load and validate a subscription file: ``.json``, ``.yaml`` or ``.yml``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".json", ".yaml", ".yml"}:
        raise ConfigError(f"{path}: unsupported file type {suffix!r}; use .json, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from None
    data: object
    if suffix == ".json":
        try:
            data = json.loads(
                text, parse_float=Decimal, parse_constant=Decimal, object_pairs_hook=_unique_keys
            )
        except ValueError as exc:
            raise ConfigError(f"{path}: invalid JSON: {exc}") from None
    else:
        try:
            data = yaml.load(text, Loader=_ExactLoader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {_yaml_reason(exc)}") from None
    if not isinstance(data, Mapping):
        found = "an empty file" if data is None else type(data).__name__
        raise ConfigError(f"{path}: top level must be a mapping, not {found}")
    return parse_subscription(data)
