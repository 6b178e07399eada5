"""One normalized inventory row, and the entity it belongs to (spec sections 3 and 4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from .vocabulary import CLOUD_SOURCES, HOST_SOURCES, INACTIVE_STATUSES, REMOVED_STATUSES


class Kind(StrEnum):
    """What an observation counts as; each kind has its own key (section 4)."""

    HOST = "host"  # host-like: correlated across the host sources
    CLOUD = "cloud"
    WEB_APP = "web_app"
    API_ENDPOINT = "api_endpoint"
    IDENTITY = "identity"
    SAAS_USER = "saas_user"
    MOBILE = "mobile_device"
    OT = "ot_asset"
    NODE = "container_node"
    SERVERLESS_CONTAINER = "serverless_container"
    IMAGE_SCAN = "container_image_scan"
    PCI_TARGET = "pci_target"


class RowError(ValueError):
    """A row that fails validation: the field at fault and why."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(slots=True, eq=False)
class Observation:
    """A validated, normalized row. ``day`` is the file's ``date=`` (the exporter's day)."""

    source: str
    day: date
    path: str  # the file key from ``tenant=`` on; orders ties
    line: int
    observed_at: datetime  # UTC, aware
    asset_type: str
    status: str = "active"
    asset_id: str | None = None
    agent_id: str | None = None
    agent_type: str = "standard"
    cloud_provider: str | None = None
    cloud_resource_id: str | None = None
    fqdn: str | None = None
    hostname: str | None = None
    netbios: str | None = None
    ips: tuple[str, ...] = ()
    network_id: str = "default"
    identity_key: str | None = None
    idp: str | None = None
    url: str | None = None
    http_method: str = "GET"
    device_id: str | None = None
    node_id: str | None = None
    instance_id: str | None = None
    image_digest: str | None = None
    scan_id: str | None = None
    pipeline_stage: str | None = None
    modules: frozenset[str] = frozenset()
    vuln_count: int | None = None
    open_port_count: int | None = None
    has_findings: bool = False
    ot_level: str = "basic"
    last_fim_event_at: datetime | None = None
    # Derived by ``classify``: the kind and the natural key (host-like: the first strong
    # identifier, ``host_strong_ids`` gives them all; None when the row has only IPs).
    kind: Kind = Kind.HOST
    key: str | None = None
    seq: int = 0  # rank in (day, observed_at, path, line) order, set by the timeline
    slot: str = ""  # the state slot: the source, per IdP for identities (section 5)
    removed: bool = False  # status decommissioned, deregistered, deleted or terminated
    active: bool = True  # status neither removed nor inactive / disabled

    @property
    def time_order(self) -> tuple[datetime, str, int]:
        """Time-of-day order (CS heartbeats, CIS de-duplication)."""
        return (self.observed_at, self.path, self.line)

    @property
    def ip_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((self.network_id, ip) for ip in self.ips)


def is_strong_fqdn(fqdn: str | None) -> bool:
    """An fqdn is an identifier only with a dot and not starting with ``localhost``."""
    return fqdn is not None and "." in fqdn and not fqdn.startswith("localhost")


def host_strong_ids(obs: Observation) -> tuple[str, ...]:
    """The strong identifiers of a host-like row, in priority order."""
    ids: list[str] = []
    if obs.asset_id:
        ids.append(f"asset:{obs.asset_id}")
    if obs.agent_id:
        ids.append(f"agent:{obs.agent_id}")
    if obs.cloud_provider and obs.cloud_resource_id:
        ids.append(f"cloud:{obs.cloud_provider}/{obs.cloud_resource_id}")
    if is_strong_fqdn(obs.fqdn):
        ids.append(f"fqdn:{obs.fqdn}")
    return tuple(ids)


def _first_host_id(obs: Observation) -> str | None:
    """The first of ``host_strong_ids(obs)`` (None when there is none), the others unbuilt."""
    if obs.asset_id:
        return f"asset:{obs.asset_id}"
    if obs.agent_id:
        return f"agent:{obs.agent_id}"
    if obs.cloud_provider and obs.cloud_resource_id:
        return f"cloud:{obs.cloud_provider}/{obs.cloud_resource_id}"
    return f"fqdn:{obs.fqdn}" if is_strong_fqdn(obs.fqdn) else None


def ip_key(network_id: str, ip: str) -> str:
    return f"ip:{network_id}/{ip}"


def _require(value: str | None, field_name: str, what: str) -> str:
    if not value:
        raise RowError(field_name, f"required for {what}")
    return value


def classify(obs: Observation) -> None:
    """Set ``kind``, ``key`` and ``strong_ids``; raise RowError when the key is missing."""
    t, s = obs.asset_type, obs.source
    obs.slot = f"{s}/{obs.idp or ''}" if t == "identity" else s
    obs.removed = obs.status in REMOVED_STATUSES
    obs.active = not obs.removed and obs.status not in INACTIVE_STATUSES
    if t in ("host", "virtual_machine") and s in HOST_SOURCES:
        obs.kind = Kind.HOST
        key = _first_host_id(obs)
        if key is None and not obs.ips:
            raise RowError(
                "asset_id",
                "host-like row needs asset_id, agent_id, cloud_provider+cloud_resource_id, "
                "an fqdn with a dot, or an ip",
            )
        obs.key = key
        return
    if (
        t in ("virtual_machine", "serverless_function", "cloud_resource") and s in CLOUD_SOURCES
    ) or (t == "cloud_resource" and s == "csp_connector"):
        obs.kind = Kind.CLOUD
        provider = _require(obs.cloud_provider, "cloud_provider", "a cloud entity")
        rid = _require(obs.cloud_resource_id, "cloud_resource_id", "a cloud entity")
        obs.key = f"cloud:{provider}/{rid}"
        return
    if t == "web_app":
        obs.kind, obs.key = Kind.WEB_APP, f"web:{_require(obs.url, 'url', t)}"
    elif t == "api_endpoint":
        obs.kind = Kind.API_ENDPOINT
        obs.key = f"api:{obs.http_method} {_require(obs.url, 'url', t)}"
    elif t == "identity":
        obs.kind, obs.key = (
            Kind.IDENTITY,
            f"identity:{_require(obs.identity_key, 'identity_key', t)}",
        )
    elif t == "saas_user":
        obs.kind, obs.key = Kind.SAAS_USER, f"saas:{_require(obs.identity_key, 'identity_key', t)}"
    elif t == "mobile_device":
        device = obs.device_id or obs.asset_id
        obs.kind, obs.key = Kind.MOBILE, f"device:{_require(device, 'device_id', t)}"
    elif t == "ot_asset":
        obs.kind, obs.key = Kind.OT, f"ot:{_require(obs.asset_id, 'asset_id', t)}"
    elif t == "container_node":
        obs.kind, obs.key = Kind.NODE, f"node:{_require(obs.node_id, 'node_id', t)}"
    elif t == "serverless_container":
        obs.kind = Kind.SERVERLESS_CONTAINER
        obs.key = f"instance:{_require(obs.instance_id, 'instance_id', t)}"
    elif t == "container_image_scan":
        obs.kind, obs.key = (
            Kind.IMAGE_SCAN,
            f"image:{_require(obs.image_digest, 'image_digest', t)}",
        )
    elif t == "ip_address":
        if len(obs.ips) != 1:
            raise RowError("ip", "an ip_address row has exactly one ip")
        obs.kind, obs.key = Kind.PCI_TARGET, f"ip:{obs.ips[0]}"
    elif t == "dns_name":
        obs.kind, obs.key = Kind.PCI_TARGET, f"dns:{_require(obs.fqdn, 'fqdn', t)}"
    else:
        raise RowError("asset_type", f"'{t}' is not an entity of source '{s}'")
