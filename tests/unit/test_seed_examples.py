"""The seed's 37 worked examples (spec section 10), driven through the engine.

``tests/fixtures/seed_examples.json`` is a byte copy of the spec's ``seed_examples.json``.
Each example becomes generated inventory rows that exercise its product's real rule,
rows that must NOT count included (other sources, other modules, retired statuses,
duplicates that correlate, ...). The rows are written as CSV, JSON Lines and JSON files
laid out like the bucket, metered with ``meter_folder``, and the product's summary entry
is compared with the example's ``expected`` strings exactly.

Families of examples:

- peak15 with ``daily_values: [low, high]`` over an ``interval``: the product's sources
  are ``delta``; ``low`` eligible entities on the interval's first day, ``high - low``
  more on day +7, the same extras retired on day +9. As of the interval's last day the
  engine's daily values over the interval must span exactly [low, high].
- ``inputs``: snapshot files (the default mode) holding exactly those counts, checked
  through the summary's components where the spec names them.
- avg90 with ``daily_range`` and ``rolling_average`` over Jan 1 - Mar 31: covered days
  (the others are gaps) whose daily values span the range and average the stated value.
- CIS: weekly rescans over the 90 days, pipeline duplicates and runtime scans.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import pytest

from qlumeter_cli.local import meter_folder
from tests.support import subscription, write_file

FIXTURE = Path(__file__).parent.parent / "fixtures" / "seed_examples.json"
EXAMPLES: dict[str, dict[str, Any]] = {
    example["id"]: example
    for example in json.loads(FIXTURE.read_text(encoding="utf-8"))["examples"]
}

Row = dict[str, Any]
Example = dict[str, Any]

CWP = ("aws", "azure", "gcp", "oci")  # CSPM, CWP and FlexScan providers
CSP = (*CWP, "alibaba")  # every CSP connector provider (VMDR / PC B)
ELIM_SETS = (["pm"], ["isl"], ["mtg"], ["pm", "isl", "mtg"])
STALE = "2025-10-01T00:00:00Z"  # a FIM event long before any metered day


# -- rows -----------------------------------------------------------------------------------


def on(month_day: str) -> date:
    """A day of 2026 (not a leap year: 01-01 .. 03-31 is exactly 90 days)."""
    return date.fromisoformat(f"2026-{month_day}")


def at(day: date, clock: str) -> str:
    return f"{day.isoformat()}T{clock}:00Z"


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def ipv4(i: int, first_octet: int = 10) -> str:
    return f"{first_octet}.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"


def row(source: str, asset_type: str, **fields: Any) -> Row:
    """One inventory row. ``source`` is written too (it must equal the path's);
    ``_file`` (``name.fmt``) is the file it lands in, default ``export.csv``."""
    return {"source": source, "asset_type": asset_type, **fields}


def agent(agent_id: str, **fields: Any) -> Row:
    """A Cloud Agent host."""
    return row("cloud_agent", "host", agent_id=agent_id, **fields)


def scanned(fqdn: str, **fields: Any) -> Row:
    """A scanner host."""
    return row("scanner", "host", fqdn=fqdn, **fields)


def identity(idp: str, key: str, **fields: Any) -> Row:
    file = "okta.csv" if idp == "okta" else "entra.jsonl"
    return row("idp", "identity", idp=idp, identity_key=key, _file=file, **fields)


def node(node_id: str, **fields: Any) -> Row:
    return row("container_sensor", "container_node", node_id=node_id, **fields)


@dataclass
class Case:
    """The generated inventory of one example and what to check besides its numbers."""

    as_of: date
    days: dict[date, list[Row]] = field(default_factory=dict)
    delta: frozenset[str] = frozenset()  # sources declared ``delta``; others are snapshots
    settings: dict[str, Any] = field(default_factory=dict)  # more subscription keys
    components: dict[str, int] | None = None
    covered_days: int | None = None
    daily: tuple[list[date], Decimal, Decimal] | None = None  # days, lowest, highest value

    def add(self, day: date, rows: Iterable[Row]) -> None:
        self.days.setdefault(day, []).extend(rows)


def write_case(root: Path, case: Case) -> None:
    """One file per (source, day, ``_file``) under ``root/inventory/tenant=acme/``."""
    files: dict[tuple[str, date, str], list[Row]] = {}
    for day, rows in case.days.items():
        for r in rows:
            data = dict(r)
            name = data.pop("_file", "export.csv")
            files.setdefault((data["source"], day, name), []).append(data)
    for (source, day, name), rows in files.items():
        stem, fmt = name.rsplit(".", 1)
        write_file(root, source, day, rows, name=stem, fmt=fmt)


# -- peak15 examples with daily_values: one Family per product ----------------------------------


@dataclass(frozen=True)
class Family:
    """The rows of eligible entity ``i`` on a day, and rows of entities that never count."""

    eligible: Callable[[int, date], list[Row]]
    noise: Callable[[date], list[Row]]
    retired: str = "decommissioned"  # the status that takes the extra entities out


def peak_case(example: Example, family: Family) -> Case:
    """``low`` entities from day 0, ``high - low`` more on day +7, retired on day +9."""
    first, last = (on(d) for d in example["interval"])
    low, high = example["daily_values"]
    grown, shrunk = first + timedelta(days=7), first + timedelta(days=9)
    case = Case(as_of=last, daily=(days_between(first, last), Decimal(low), Decimal(high)))
    case.add(first, [r for i in range(low) for r in family.eligible(i, first)])
    case.add(first, family.noise(first))
    case.add(grown, [r for i in range(low, high) for r in family.eligible(i, grown)])
    retired = {"status": family.retired}
    case.add(shrunk, [r | retired for i in range(low, high) for r in family.eligible(i, shrunk)])
    case.delta = frozenset(r["source"] for rows in case.days.values() for r in rows)
    return case


def csam_rows(i: int, day: date) -> list[Row]:
    """An agent host; every fourth also scanned (fqdn case and trailing dot differ) and
    every tenth also listed by EASM: one managed asset either way."""
    fqdn = f"h{i}.corp.example"
    rows = [agent(f"agt-{i}", fqdn=fqdn, ip=ipv4(i))]
    if i % 4 == 0:
        rows.append(scanned(fqdn.upper() + ".", modules=["vmdr"], _file="scan.jsonl"))
    if i % 10 == 1:
        rows.append(row("easm", "host", fqdn=fqdn))
    return rows


def csam_noise(day: date) -> list[Row]:
    """Discovered only by inventory-only sources, or not active."""
    return [
        *[row("easm", "host", fqdn=f"ext{j}.example.net") for j in range(200)],
        *[row("cmdb", "host", asset_id=f"cmdb-{j}", _file="cmdb.json") for j in range(100)],
        *[row("vmware", "host", fqdn=f"vm{j}.lab.example") for j in range(100)],
        *[agent(f"idle-{j}", status="inactive") for j in range(50)],
    ]


def identity_rows(i: int, day: date) -> list[Row]:
    """Okta for all, Entra ID too for every third (the key's case differs): one identity.
    Every sixth is disabled in Okta but enabled in Entra ID: still counted."""
    rows = [identity("okta", f"User{i}@Example.com", status="disabled" if i % 6 == 0 else "active")]
    if i % 3 == 0:
        rows.append(identity("entra_id", f"user{i}@example.com"))
    return rows


def identity_noise(day: date) -> list[Row]:
    """Disabled identities, in one IdP or in both."""
    return [
        *[identity("okta", f"former{j}@example.com", status="disabled") for j in range(300)],
        *[identity("okta", f"left{j}@example.com", status="disabled") for j in range(100)],
        *[identity("entra_id", f"LEFT{j}@example.com", status="disabled") for j in range(100)],
    ]


def mobile_rows(i: int, day: date) -> list[Row]:
    """Intune for all, the VMDR Mobile agent too for every other one: one device."""
    device = f"DEV-{i:05d}"
    rows = [row("intune", "mobile_device", device_id=device, _file="devices.json")]
    if i % 2 == 0:
        rows.append(row("mobile_agent", "mobile_device", device_id=device))
    return rows


def mobile_noise(day: date) -> list[Row]:
    """Disabled devices, and devices from a source that is not VMDR Mobile's."""
    return [
        *[
            row("intune", "mobile_device", device_id=f"OFF-{j}", status="disabled")
            for j in range(200)
        ],
        *[row("third_party", "mobile_device", device_id=f"MDM-{j}") for j in range(100)],
    ]


def edr_rows(i: int, day: date) -> list[Row]:
    """Every tenth endpoint is ``inactive`` but still registered: it still counts."""
    modules = ["edr", "vmdr"] if i % 2 else ["edr"]
    status = "inactive" if i % 10 == 0 else "active"
    return [agent(f"edr-{i}", hostname=f"ws{i}", modules=modules, status=status)]


def edr_noise(day: date) -> list[Row]:
    """No EDR module, EDR disabled, or EDR on a scanner host."""
    return [
        *[agent(f"vm-only-{j}", modules=["vmdr"]) for j in range(200)],
        *[agent(f"edr-off-{j}", modules=["edr"], status="disabled") for j in range(100)],
        *[scanned(f"s{j}.corp.example", modules=["edr"]) for j in range(50)],
    ]


def zlinux_rows(i: int, day: date) -> list[Row]:
    return [agent(f"z-{i}", agent_type="ZLINUX" if i % 3 == 0 else "zlinux")]


def zlinux_noise(day: date) -> list[Row]:
    """Standard agents, and inactive zLinux agents."""
    return [
        *[agent(f"x86-{j}") for j in range(200)],
        *[agent(f"z-idle-{j}", agent_type="zlinux", status="inactive") for j in range(100)],
    ]


def web_app(source: str, url: str, module: str, **fields: Any) -> Row:
    return row(source, "web_app", url=url, modules=[module], **fields)


def was_rows(i: int, day: date) -> list[Row]:
    """Every fifth app is reported again under a URL that normalizes the same."""
    rows = [web_app("was", f"https://app{i}.example.com/", "was")]
    if i % 5 == 0:
        rows.append(web_app("was", f"HTTPS://App{i}.Example.com:443", "was", _file="more.jsonl"))
    return rows


def was_noise(day: date) -> list[Row]:
    """TAS apps, WAS-source apps not configured in WAS, paused (inactive) apps."""
    return [
        *[web_app("tas", f"https://tas{j}.example.com", "tas") for j in range(30)],
        *[web_app("was", f"https://plain{j}.example.com", "tas") for j in range(20)],
        *[
            web_app("was", f"https://off{j}.example.com", "was", status="inactive")
            for j in range(10)
        ],
    ]


def paf_rows(i: int, day: date) -> list[Row]:
    return [agent(f"paf-{i}", modules=["paf", "pc"])]


def paf_noise(day: date) -> list[Row]:
    """PAF on a scanner host, agents without PAF, inactive PAF agents."""
    return [
        *[scanned(f"p{j}.corp.example", modules=["paf"]) for j in range(100)],
        *[agent(f"pc-{j}", modules=["pc"]) for j in range(100)],
        *[agent(f"paf-off-{j}", modules=["paf"], status="inactive") for j in range(50)],
    ]


def fim_rows(i: int, day: date) -> list[Row]:
    """Agents with FIM; scanner hosts and container nodes with a FIM event that day.
    A node is named like a scanner host's fqdn: still a different entity."""
    event = at(day, "08:00")
    if i % 3 == 0:
        return [agent(f"fim-{i}", modules=["fim"])]
    if i % 3 == 1:
        return [scanned(f"f{i}.corp.example", modules=["fim", "vmdr"], last_fim_event_at=event)]
    modules = ["fim", "cs_runtime"]
    name = f"f{i - 1}.corp.example"
    return [node(name, modules=modules, last_fim_event_at=event, _file="nodes.jsonl")]


def fim_noise(day: date) -> list[Row]:
    """Scanner hosts and nodes whose last FIM event is stale; agents without FIM or
    inactive."""
    return [
        *[
            scanned(f"old{j}.corp.example", modules=["fim"], last_fim_event_at=STALE)
            for j in range(100)
        ],
        *[node(f"quiet-{j}", modules=["fim"], last_fim_event_at=STALE) for j in range(50)],
        *[agent(f"nofim-{j}", modules=["vmdr"]) for j in range(50)],
        *[agent(f"fim-off-{j}", modules=["fim"], status="inactive") for j in range(30)],
    ]


def pci_target(asset_type: str, **fields: Any) -> Row:
    return row("pci_scanner", asset_type, **{"modules": ["pci"], **fields})


def pci_rows(i: int, day: date) -> list[Row]:
    """IPv4 and IPv6 addresses and DNS names; an IPv6 address written two ways is one."""
    if i % 2:
        return [pci_target("dns_name", fqdn=f"Pay{i}.Shop.Example.")]
    if i % 50 == 0:
        address = IPv6Address(f"2001:db8::{i:x}")
        return [
            pci_target("ip_address", ip=str(address)),
            pci_target("ip_address", ip=address.exploded.upper(), modules=["PCI"]),
        ]
    return [pci_target("ip_address", ip=ipv4(i, 198))]


def pci_noise(day: date) -> list[Row]:
    """Addresses not configured for PCI, inactive DNS names."""
    return [
        *[pci_target("ip_address", ip=ipv4(j, 172), modules=["vmdr"]) for j in range(100)],
        *[
            pci_target("dns_name", fqdn=f"old{j}.shop.example", status="inactive")
            for j in range(50)
        ],
    ]


def pm_rows(i: int, day: date) -> list[Row]:
    """pm, isl, mtg or all three: each agent counted once."""
    return [agent(f"pm-{i}", modules=ELIM_SETS[i % 4])]


def pm_noise(day: date) -> list[Row]:
    """PM on a scanner host, agents without PM modules, inactive PM agents."""
    return [
        *[scanned(f"pm{j}.corp.example", modules=["pm"]) for j in range(100)],
        *[agent(f"vm-{j}", modules=["vmdr"]) for j in range(100)],
        *[agent(f"pm-off-{j}", modules=["pm"], status="inactive") for j in range(50)],
    ]


def elim_rows(i: int, day: date) -> list[Row]:
    """Agents and scanner hosts; a host seen by both, with other modules, counts once."""
    fqdn = f"e{i}.corp.example"
    if i % 5 == 0:
        return [scanned(fqdn, modules=["pm"])]
    rows = [agent(f"elim-{i}", fqdn=fqdn, modules=ELIM_SETS[i % 4])]
    if i % 5 == 1:
        rows.append(scanned(fqdn.upper(), modules=["isl"]))
    return rows


def elim_noise(day: date) -> list[Row]:
    """Hosts without a TruRisk Eliminate module, inactive hosts with them."""
    return [
        *[agent(f"vm-{j}", modules=["vmdr"]) for j in range(100)],
        *[
            scanned(f"i{j}.corp.example", modules=["pm", "isl"], status="inactive")
            for j in range(50)
        ],
    ]


FAMILIES: dict[str, Family] = {
    "CSAM": Family(csam_rows, csam_noise),
    "ETM_ID": Family(identity_rows, identity_noise, retired="disabled"),
    "VMDR_MOBILE": Family(mobile_rows, mobile_noise, retired="disabled"),
    "EDR": Family(edr_rows, edr_noise, retired="deregistered"),
    "ZLINUX": Family(zlinux_rows, zlinux_noise, retired="inactive"),
    "WAS": Family(was_rows, was_noise),
    "PAF": Family(paf_rows, paf_noise, retired="inactive"),
    "FIM": Family(fim_rows, fim_noise),
    "PCI": Family(pci_rows, pci_noise, retired="inactive"),
    "PM": Family(pm_rows, pm_noise),
    "ELIM": Family(elim_rows, elim_noise),
}


# -- inputs examples: snapshot files holding exactly the example's counts -----------------------


def snapshot_days(example: Example) -> tuple[date, date]:
    """The snapshot day and the as-of day (the interval's end) of an ``inputs`` example."""
    if example["id"].endswith("-2"):
        return on("01-20"), on("01-30")
    return on("01-08"), on("01-15")


def etm_case(example: Example) -> Case:
    """Third-party hosts with findings, CSPM workloads with findings (some of them the
    same VMs as hosts: one entity) and web apps with findings."""
    total = example["inputs"]["assets_with_findings"]
    clouds = apps = total // 10
    day, as_of = snapshot_days(example)

    def host(i: int) -> Row:
        r = row("third_party", "host", fqdn=f"t{i}.corp.example")
        if i < 300:  # also a CSPM workload below
            r.update(cloud_provider="aws", cloud_resource_id=f"i-{i:08x}")
        r.update({"vuln_count": 1 + i % 5} if i % 2 else {"has_findings": True, "vuln_count": 0})
        return r

    def workload(kind: str, provider: str, rid: str, findings: bool) -> Row:
        return row(
            "cspm",
            kind,
            cloud_provider=provider,
            cloud_resource_id=rid,
            has_findings=findings,
            _file="findings.jsonl",
        )

    def third_party(fqdn: str, **fields: Any) -> Row:
        return row("third_party", "host", fqdn=fqdn, **fields)

    kinds = ("virtual_machine", "serverless_function")
    case = Case(as_of=as_of)
    case.add(day, [host(i) for i in range(total - clouds - apps)])
    case.add(day, [workload(kinds[j % 2], "azure", f"wl-{j}", True) for j in range(clouds)])
    case.add(
        day,
        [
            web_app("tas", f"https://shop{j}.example.com", "tas", has_findings=True)
            for j in range(apps)
        ],
    )
    case.add(
        day,
        [  # no findings, not active, or an entity counted already
            *[third_party(f"clean{j}.corp.example", vuln_count=0) for j in range(1000)],
            *[
                third_party(f"old{j}.corp.example", vuln_count=4, status="inactive")
                for j in range(200)
            ],
            *[workload(kinds[0], "aws", f"i-{j:08x}", True) for j in range(300)],
            *[workload(kinds[0], "gcp", f"clean-{j}", False) for j in range(200)],
            *[
                web_app("tas", f"https://clean{j}.example.com", "tas", vuln_count=0)
                for j in range(100)
            ],
            *[
                agent(f"ok-{j}", modules=["vmdr"], vuln_count=0, open_port_count=3)
                for j in range(300)
            ],
        ],
    )
    return case


def assessed_case(example: Example, module: str, other: str) -> Case:
    """VMDR / PC: A1 agents, A2 scanner hosts (some IP only), B CSP connector VMs
    (Alibaba included), C ghosts spread over A2 and B.

    A later agent snapshot drops some agents and reports others terminated: A1 is
    cumulative, they still count.
    """
    a, b, c = (example["inputs"][k] for k in ("A", "B", "C"))
    a1 = a * 2 // 3
    ghosts_a2 = c * 2 // 5
    day, as_of = snapshot_days(example)
    later = day + timedelta(days=4)

    def a1_host(i: int, status: str = "active") -> Row:
        r = agent(
            f"ag-{i}",
            fqdn=f"a{i}.corp.example",
            modules=[module],
            vuln_count=3,
            open_port_count=2,
            status=status,
        )
        if i < 500:
            r.update(asset_type="virtual_machine", cloud_provider="aws", cloud_resource_id=f"i-{i}")
        return r

    def a2_host(j: int) -> Row:
        ids = {"ip": ipv4(j, 172)} if j % 4 == 3 else {"fqdn": f"s{j}.dmz.example"}  # IP only
        ports = 0 if j < ghosts_a2 else 1 + j % 3
        modules = [module, "pci"] if j % 2 else [module]
        return row("scanner", "host", modules=modules, open_port_count=ports, vuln_count=0, **ids)

    def cloud(k: int, kind: str = "virtual_machine", provider: str = "", **counts: int) -> Row:
        return row(
            "csp_connector",
            kind,
            cloud_provider=provider or CSP[k % 5],
            cloud_resource_id=f"vm-{k}",
            _file="inventory.jsonl",
            **counts,
        )

    def b_vm(k: int) -> Row:
        if k < c - ghosts_a2:
            return cloud(k, open_port_count=0, vuln_count=0)
        return cloud(k, vuln_count=0) if k % 3 == 0 else cloud(k)  # ports unknown: no ghost

    case = Case(as_of=as_of, components={"A1": a1, "A2": a - a1, "B": b, "C": c})
    case.add(day, [a1_host(i) for i in range(a1)])
    case.add(day, [a2_host(j) for j in range(a - a1)])
    case.add(day, [b_vm(k) for k in range(b)])
    case.add(
        day,
        [
            # the scanner sees every fourth agent's host with nothing open: the agent reports
            # findings, so it is neither A2 nor a ghost
            *[
                scanned(f"A{i}.Corp.Example.", modules=[module], vuln_count=0, open_port_count=0)
                for i in range(0, a1, 4)
            ],
            # the connector sees agents' VMs: A1, not B
            *[cloud(i, provider="aws") | {"cloud_resource_id": f"i-{i}"} for i in range(500)],
            # entities this product never counts
            *[scanned(f"x{j}.dmz.example", modules=[other], vuln_count=2) for j in range(300)],
            *[agent(f"ox-{j}", modules=[other]) for j in range(200)],
            *[
                row("cloud_agent", "host", fqdn=f"na{j}.corp.example", modules=[module])
                for j in range(100)
            ],
            *[
                cloud(k, "cloud_resource", "aws") | {"cloud_resource_id": f"bucket-{k}"}
                for k in range(200)
            ],
        ],
    )
    case.add(later, [a1_host(i, "terminated" if i < 800 else "active") for i in range(500, a1)])
    return case


def cwp_agent_case(example: Example) -> Case:
    """Agent VMs on AWS/Azure/GCP/OCI, the first B of them ghosts. FlexScan-attributed,
    Alibaba, non-VM and agentless rows do not count."""
    a, b = example["inputs"]["A"], example["inputs"]["B"]
    day, as_of = snapshot_days(example)

    def vm(agent_id: str | None, provider: str, rid: str, **fields: Any) -> Row:
        ids = {"agent_id": agent_id} if agent_id else {}
        return row(
            "cloud_agent",
            "virtual_machine",
            cloud_provider=provider,
            cloud_resource_id=rid,
            _file="agents.json",
            **ids,
            **fields,
        )

    def counted(i: int) -> Row:
        counts = {"open_port_count": 0, "vuln_count": 0} if i < b else {"vuln_count": 1 + i % 4}
        return vm(f"cwp-{i}", CWP[i % 4], f"i-{i:07d}", **counts)

    def flexscan(j: int) -> Row:
        return row(
            "flexscan",
            "virtual_machine",
            cloud_provider="aws",
            cloud_resource_id=f"fx-{j}",
            _file="scan.jsonl",
        )

    case = Case(as_of=as_of, components={"A": a, "B": b})
    case.add(day, [counted(i) for i in range(a)])
    case.add(
        day,
        [
            *[vm(f"fx-{j}", "aws", f"fx-{j}", vuln_count=1) for j in range(300)],
            *[flexscan(j) for j in range(300)],
            *[vm(f"ali-{j}", "alibaba", f"ali-{j}", vuln_count=1) for j in range(200)],
            *[vm(None, "gcp", f"noagent-{j}", vuln_count=1) for j in range(100)],
            *[agent(f"onprem-{j}", vuln_count=1) for j in range(200)],
        ],
    )
    return case


def ot_case(example: Example) -> Case:
    """Basic (w 0), enriched (w 2/3) and vulnerable (w 1) OT assets; the level given
    explicitly (any case) or by default from ``vuln_count``."""
    counts = example["inputs"]
    levels = [level for level in ("basic", "enriched", "vulnerable") for _ in range(counts[level])]
    day, as_of = snapshot_days(example)

    def ot(asset_id: str, source: str = "ot_sensor", **fields: Any) -> Row:
        return row(source, "ot_asset", asset_id=asset_id, _file="ot.json", **fields)

    def asset(i: int, level: str) -> Row:
        if level == "vulnerable" and i % 2:
            return ot(f"plc-{i}", vuln_count=2)  # the level defaults to vulnerable
        if level == "basic" and i % 2:
            return ot(f"plc-{i}", vuln_count=0)  # the level defaults to basic
        return ot(f"plc-{i}", ot_level=level.upper() if i % 3 == 0 else level)

    case = Case(as_of=as_of, components=dict(counts))
    case.add(day, [asset(i, level) for i, level in enumerate(levels)])
    case.add(
        day,
        [
            *[ot(f"gone-{j}", vuln_count=3, status="decommissioned") for j in range(100)],
            *[ot(f"off-{j}", ot_level="enriched", status="inactive") for j in range(50)],
            *[ot(f"cmdb-{j}", "cmdb", ot_level="enriched") for j in range(50)],
        ],
    )
    return case


def tas_case(example: Example) -> Case:
    """Web apps (w 1) and API endpoints (w 1/10), reported again under URL and method
    variants that normalize to the same app or endpoint."""
    apps, endpoints = example["inputs"]["web_apps"], example["inputs"]["api_endpoints"]
    day, as_of = snapshot_days(example)

    def app(url: str, module: str = "tas", source: str = "tas", **fields: Any) -> Row:
        return web_app(source, url, module, _file="apps.jsonl", **fields)

    def api(url: str, method: str, **fields: Any) -> Row:
        return row("tas", "api_endpoint", url=url, http_method=method, modules=["tas"], **fields)

    base = "https://api.example.com/v1/res"
    case = Case(as_of=as_of, components={"web_apps": apps, "api_endpoints": endpoints})
    case.add(day, [app(f"https://app{j}.example.com") for j in range(apps)])
    case.add(day, [api(f"{base}{k // 2}", "post" if k % 2 else "GET") for k in range(endpoints)])
    case.add(
        day,
        [
            *[app(f"HTTPS://App{j}.Example.com:443/") for j in range(1, apps, 10)],
            *[
                api(f"HTTPS://API.Example.com:443/v1/res{k}/", "get")
                for k in range(0, endpoints // 2, 10)
            ],
            *[app(f"https://legacy{j}.example.com", module="was") for j in range(20)],
            *[app(f"https://retired{j}.example.com", status="inactive") for j in range(15)],
            *[
                api(f"https://api.example.com/v0/old{j}", "GET", status="decommissioned")
                for j in range(30)
            ],
            *[app(f"https://was{j}.example.com", source="was") for j in range(10)],
        ],
    )
    return case


def workload_case(
    example: Example, source: str, providers: tuple[str, ...], foreign: tuple[str, ...]
) -> Case:
    """CSPM / CDR: the same VMs and serverless functions on three covered days."""
    vms = example["inputs"]["virtual_machines"]
    functions = example["inputs"]["serverless_functions"]
    covered = [on("01-05"), on("02-14"), on("03-31")]
    daily = Decimal(vms) + Decimal(functions) / 100

    def workload(kind: str, rid: str, k: int, provider: str = "", **fields: Any) -> Row:
        return row(
            source,
            kind,
            cloud_provider=provider or providers[k % len(providers)],
            cloud_resource_id=rid,
            **fields,
        )

    case = Case(as_of=on("03-31"), covered_days=len(covered), daily=(covered, daily, daily))
    vm, fn = "virtual_machine", "serverless_function"
    for day in covered:
        case.add(day, [workload(vm, f"vm-{k}", k) for k in range(vms)])
        case.add(day, [workload(fn, f"fn-{k}", k, _file="fns.jsonl") for k in range(functions)])
        noon = at(day, "12:00")
        case.add(
            day,
            [
                # a VM also reported as a function (the larger weight, once), VMs seen twice
                *[workload(fn, f"vm-{k}", k) for k in range(10)],
                *[workload(vm, f"vm-{k}", k, observed_at=noon) for k in range(20)],
                # never counted: non-compute resources, other providers, deleted workloads
                *[workload("cloud_resource", f"db-{k}", k) for k in range(300)],
                *[
                    workload(vm, f"far-{k}", k, provider=foreign[k % len(foreign)])
                    for k in range(50)
                ],
                *[workload(vm, f"old-vm-{k}", k, status="deleted") for k in range(40)],
                *[workload(fn, f"old-fn-{k}", k, status="terminated") for k in range(40)],
            ],
        )
    return case


def cis_case(example: Example) -> Case:
    """Digests scanned weekly, 12 times each, at the ``ci`` stage. The ``registry`` scan
    of the same digest 6 h or 23 h later is the same scan; ``runtime`` scans never count."""
    weeks = 12
    digests, rest = divmod(example["inputs"]["unique_scans"], weeks)
    assert rest == 0
    first = on(example["window"][0])
    case = Case(as_of=on(example["window"][1]))

    def scan(day: date, clock: str, digest: str, stage: str, file: str) -> None:
        case.add(
            day,
            [
                row(
                    "image_scanner",
                    "container_image_scan",
                    image_digest=digest,
                    scan_id=f"{stage}-{day}-{digest[-8:]}",
                    pipeline_stage=stage,
                    observed_at=at(day, clock),
                    _file=file,
                )
            ],
        )

    for j in range(digests):
        digest = f"sha256:{j:064x}"
        for week in range(weeks):
            day = first + timedelta(days=j % 7 + 7 * week)
            scan(day, "10:00", digest, "ci", "ci.csv")
            if week % 2 == 0:
                scan(day, "16:00", digest, "Registry", "registry.json")
            else:
                scan(day + timedelta(days=1), "09:00", digest, "registry", "registry.json")
            scan(day + timedelta(days=3), "12:00", digest, "runtime", "runtime.jsonl")
    return case


# -- avg90 examples with daily_range and rolling_average -----------------------------------------


def spread(first: date, last: date, n: int) -> list[date]:
    """``n`` days from ``first`` to ``last`` inclusive, evenly spread."""
    span = (last - first).days
    return [first + timedelta(days=i * span // (n - 1)) for i in range(n)]


def averaging(low: int, high: int, mean: int, n: int) -> list[int]:
    """``n`` integers in [low, high], both reached, whose mean is exactly ``mean``."""
    assert low + high == 2 * mean and n % 2 == 0
    half, pairs = high - mean, n // 2
    values: list[int] = []
    for k in range(pairs):
        deviation = half * (pairs - k) // pairs
        pair = [mean - deviation, mean + deviation]
        values += pair if k % 2 == 0 else pair[::-1]
    return values


def rolling_case(
    example: Example, n: int, day_rows: Callable[[date, int], list[Row]], **settings: Any
) -> Case:
    """``n`` covered days over the window (the others are gaps) with varying values."""
    first, last = (on(d) for d in example["window"])
    low, high = example["daily_range"]
    covered = spread(first, last, n)
    values = averaging(low, high, example["inputs"]["rolling_average"], n)
    case = Case(
        as_of=last, settings=settings, covered_days=n, daily=(covered, Decimal(low), Decimal(high))
    )
    for day, value in zip(covered, values, strict=True):
        case.add(day, day_rows(day, value))
    return case


def flexscan_rows(day: date, value: int) -> list[Row]:
    """VMs; not Alibaba VMs, functions, non-compute resources or deleted VMs."""

    def scan(kind: str, provider: str, rid: str, **fields: Any) -> Row:
        return row(
            "flexscan",
            kind,
            cloud_provider=provider,
            cloud_resource_id=rid,
            _file="scan.jsonl",
            **fields,
        )

    vm = "virtual_machine"
    return [
        *[scan(vm, CWP[k % 4], f"i-{k:06d}") for k in range(value)],
        *[scan(vm, "alibaba", f"ali-{k}") for k in range(30)],
        *[scan("serverless_function", "aws", f"fn-{k}") for k in range(50)],
        *[scan("cloud_resource", "aws", f"bucket-{k}") for k in range(20)],
        *[scan(vm, "aws", f"gone-{k}", status="deleted") for k in range(20)],
    ]


def cs_rows(day: date, value: int) -> list[Row]:
    """One heartbeat per node per day (``1440 x 1``): yesterday's nodes are gone today.
    Nodes without runtime protection, inactive or decommissioned do not count."""
    return [
        *[node(f"node-{k}", modules=["cs_runtime"]) for k in range(value)],
        *[node(f"bare-{k}", modules=["fim"]) for k in range(10)],
        *[node(f"idle-{k}", modules=["cs_runtime"], status="inactive") for k in range(5)],
        *[node(f"gone-{k}", modules=["cs_runtime"], status="decommissioned") for k in range(5)],
    ]


def sc_rows(day: date, value: int) -> list[Row]:
    """Instances (some reported twice); those on a node CS counts that day are excluded,
    those on a node CS does not protect are not; deleted ones do not count."""

    def task(name: str, **fields: Any) -> Row:
        return row(
            "serverless_sensor",
            "serverless_container",
            instance_id=name,
            _file="tasks.jsonl",
            **fields,
        )

    return [
        *[task(f"task-{k}") for k in range(5, value)],
        *[task(f"task-{k}", node_id=f"bare-{k}") for k in range(5)],
        *[task(f"task-{k}", observed_at=at(day, "06:00")) for k in range(5, 25)],
        *[task(f"on-node-{k}", node_id=f"cs-node-{k}") for k in range(10)],
        *[task(f"stopped-{k}", status="deleted") for k in range(5)],
        *[node(f"cs-node-{k}", modules=["cs_runtime"]) for k in range(10)],
        *[node(f"bare-{k}", modules=["fim"]) for k in range(5)],
    ]


def sspm_rows(day: date, value: int) -> list[Row]:
    """Users of two SaaS apps: a user in both (the key's case differs) is one user."""

    def user(key: str, app: str, **fields: Any) -> Row:
        return row("sspm", "saas_user", identity_key=key, _file=app, **fields)

    return [
        *[user(f"user{k}@corp.example", "m365.csv") for k in range(value)],
        *[user(f"User{k}@Corp.Example", "slack.jsonl") for k in range(0, value, 10)],
        *[user(f"left{k}@corp.example", "slack.jsonl", status="inactive") for k in range(100)],
        *[user(f"gone{k}@corp.example", "m365.csv", status="disabled") for k in range(50)],
    ]


DAILY_FEED = {"container": {"heartbeat_minutes": 1440, "missed_heartbeats": 1}}

BUILDERS: dict[str, Callable[[Example], Case]] = {
    **{code: (lambda ex, f=family: peak_case(ex, f)) for code, family in FAMILIES.items()},
    "ETM": etm_case,
    "VMDR": lambda ex: assessed_case(ex, "vmdr", "pc"),
    "PC": lambda ex: assessed_case(ex, "pc", "vmdr"),
    "VMDR_OT": ot_case,
    "CWP_AGENT": cwp_agent_case,
    "TAS": tas_case,
    "CSPM": lambda ex: workload_case(ex, "cspm", CWP, ("alibaba",)),
    "CDR": lambda ex: workload_case(ex, "cdr", CWP[:3], ("oci", "alibaba")),
    "CIS": cis_case,
    "CWP_FLEXSCAN": lambda ex: rolling_case(ex, 10, flexscan_rows),
    "CS": lambda ex: rolling_case(ex, 30, cs_rows, **DAILY_FEED),
    "SC": lambda ex: rolling_case(ex, 10, sc_rows, **DAILY_FEED),
    "SSPM": lambda ex: rolling_case(ex, 10, sspm_rows),
}


# -- the tests ------------------------------------------------------------------------------


def test_every_seed_example_has_its_test() -> None:
    examples = json.loads(FIXTURE.read_text(encoding="utf-8"))["examples"]
    ids = [example["id"] for example in examples]
    assert len(ids) == len(set(ids)) == 37
    assert set(EXAMPLES) == set(ids)
    assert {example["product"] for example in examples} <= set(BUILDERS)


@pytest.mark.parametrize("example_id", list(EXAMPLES))
def test_seed_example(example_id: str, tmp_path: Path) -> None:
    example = EXAMPLES[example_id]
    code = example["product"]
    case = BUILDERS[code](example)
    write_case(tmp_path, case)
    keys: dict[str, Any] = dict(case.settings)
    if case.delta:
        keys["sources"] = {source: {"mode": "delta"} for source in sorted(case.delta)}
    for key in ("rounding", "fed_high"):
        if key in example:
            keys[key] = example[key]
    sub = subscription({code: {"ratio": example["ratio"]}}, **keys)

    document, _, _ = meter_folder(sub, tmp_path, case.as_of)

    ingest = document["ingest"]
    assert [f["path"] for f in ingest["files"] if f["status"] != "ok"] == []
    assert ingest["rejects"] == []  # every generated row is valid: the noise really is noise
    entry = next(p for p in document["summary"]["products"] if p["product"] == code)
    got: dict[str, Any] = {"utilization": entry["utilization"], "qlus": entry["qlus"]}
    want: dict[str, Any] = dict(example["expected"])
    if case.components is not None:
        got["components"] = entry["components"]
        want["components"] = {name: str(n) for name, n in case.components.items()}
    if case.covered_days is not None:
        got["covered_days"] = entry["covered_days"]
        want["covered_days"] = case.covered_days
    if case.daily is not None:
        days, low, high = case.daily
        values = {v["day"]: Decimal(v["value"]) for v in document["daily"][code]}
        seen = [values[day.isoformat()] for day in days]
        got["daily_min_max"] = (min(seen), max(seen))
        want["daily_min_max"] = (low, high)
    assert got == want
