"""Spec section 7: each product's eligibility, exclusions, weights and components."""

from __future__ import annotations

from fractions import Fraction

from tests.support import obs, run, series, subscription, usage_of, value_on

D1, D2 = "2026-01-01", "2026-01-02"


def count(code: str, rows: list, on: str = D1, **sub: object) -> Fraction:
    return value_on(run(subscription([code], **sub), rows, on), code, on)


def test_csam_excludes_sources_only_when_exclusive() -> None:
    rows = [
        obs("easm", D1, fqdn="shop.example.com"),  # easm only: excluded
        obs("vmware", D1, asset_id="vm-1"),  # vmware only: excluded
        obs("easm", D1, fqdn="www.example.com"),
        obs("scanner", D1, fqdn="www.example.com", ips=["10.1.1.1"]),  # also a scanner: counted
        obs("third_party", D1, asset_id="tp-1"),
    ]
    assert count("CSAM", rows) == 2


def test_csam_qlus_are_included_with_etm_but_counted() -> None:
    from qlumeter.summary import build_summary

    rows = [obs("cloud_agent", D1, agent_id="a", vuln_count=2)]
    sub = subscription({"ETM": {"ratio": "3"}, "CSAM": {"ratio": "1"}})
    products = {p["product"]: p for p in build_summary(sub, run(sub, rows, D1))["products"]}
    assert products["CSAM"]["utilization"] == "1"
    assert products["CSAM"]["qlus"] == "0"
    assert products["CSAM"]["included_with"] == "ETM"
    assert products["ETM"]["qlus"] == "3"


def test_etm_counts_findings_across_kinds_and_merges_cloud_entities() -> None:
    rows = [
        obs(
            "cloud_agent",
            D1,
            "virtual_machine",
            agent_id="a1",
            cloud_provider="aws",
            cloud_resource_id="i-1",
            vuln_count=0,
        ),
        obs(
            "cspm",
            D1,
            "virtual_machine",
            cloud_provider="aws",
            cloud_resource_id="i-1",
            has_findings=True,
        ),  # same entity as the agent host: counted once
        obs(
            "cspm",
            D1,
            "virtual_machine",
            cloud_provider="aws",
            cloud_resource_id="i-2",
            has_findings=True,
        ),
        obs("third_party", D1, "web_app", url="https://shop.example.com", has_findings=True),
        obs("third_party", D1, "api_endpoint", url="https://api.example.com/v1", has_findings=True),
        obs("container_sensor", D1, "container_node", node_id="n1", vuln_count=4),
        obs("idp", D1, "identity", identity_key="x@example.com", idp="okta", has_findings=True),
        obs("scanner", D1, asset_id="clean", vuln_count=0),
        obs("scanner", D1, asset_id="gone", vuln_count=3, status="inactive"),
    ]
    assert count("ETM", rows) == 5


def test_etm_id_dedupes_across_idps_and_skips_disabled() -> None:
    rows = [
        obs("idp", D1, "identity", identity_key="ann@example.com", idp="okta"),
        obs(
            "idp", D1, "identity", identity_key="ann@example.com", idp="entra_id", status="disabled"
        ),
        obs("idp", D1, "identity", identity_key="bob@example.com", idp="okta", status="disabled"),
        obs(
            "idp", D1, "identity", identity_key="bob@example.com", idp="entra_id", status="disabled"
        ),
        obs("idp", D1, "identity", identity_key="cy@example.com", idp="ping", status="enabled"),
        obs("sspm", D1, "identity", identity_key="dan@example.com"),  # not from idp
    ]
    assert count("ETM_ID", rows) == 2


def test_mobile_counts_enabled_devices_from_its_three_sources() -> None:
    rows = [
        obs("intune", D1, "mobile_device", device_id="d1", status="enabled"),
        obs("mobile_agent", D1, "mobile_device", device_id="d1"),
        obs("cloud_agent", D1, "mobile_device", asset_id="d2"),
        obs("scanner", D1, "mobile_device", device_id="d3"),  # not a mobile source
        obs("intune", D1, "mobile_device", device_id="d4", status="disabled"),
    ]
    assert count("VMDR_MOBILE", rows) == 2


def test_ot_weights_and_levels() -> None:
    rows = [obs("ot_sensor", D1, "ot_asset", asset_id=f"b{i}", ot_level="basic") for i in range(4)]
    rows += [
        obs("ot_sensor", D1, "ot_asset", asset_id=f"e{i}", ot_level="enriched") for i in range(3)
    ]
    rows += [obs("ot_sensor", D1, "ot_asset", asset_id="v", vuln_count=2)]  # default: vulnerable
    m = run(subscription(["VMDR_OT"]), rows, D1)
    assert value_on(m, "VMDR_OT", D1) == 3
    assert usage_of(m, "VMDR_OT").components == {"basic": 4, "enriched": 3, "vulnerable": 1}


def test_zlinux_counts_active_zlinux_agents() -> None:
    rows = [
        obs("cloud_agent", D1, agent_id="z1", agent_type="zlinux"),
        obs("cloud_agent", D1, agent_id="z2", agent_type="zlinux", status="inactive"),
        obs("cloud_agent", D1, agent_id="s1"),
    ]
    assert count("ZLINUX", rows) == 1


def cloud(
    source: str,
    rid: str,
    asset_type: str = "virtual_machine",
    provider: str = "aws",
    on: str = D1,
    **kw: object,
) -> object:
    return obs(source, on, asset_type, cloud_provider=provider, cloud_resource_id=rid, **kw)


def test_cspm_weights_and_exclusions() -> None:
    rows = [
        cloud("cspm", "vm1"),
        cloud("cspm", "vm1", "serverless_function"),  # both in one day: the larger weight
        cloud("cspm", "fn1", "serverless_function"),
        cloud("cspm", "fn2", "serverless_function", provider="oci"),
        cloud("cspm", "bucket", "cloud_resource"),  # never
        cloud("cspm", "vm2", provider="alibaba"),  # not a CSPM platform
        cloud("cspm", "vm3", status="deleted"),  # removed
    ]
    assert count("CSPM", rows) == Fraction(102, 100)


def test_cdr_excludes_oci() -> None:
    rows = [
        cloud("cdr", "vm1"),
        cloud("cdr", "vm2", provider="oci"),
        cloud("cdr", "vm3", "serverless_function", provider="gcp"),
    ]
    assert count("CDR", rows) == Fraction(101, 100)


def test_flexscan_counts_agentless_vms() -> None:
    rows = [
        cloud("flexscan", "vm1"),
        cloud("flexscan", "fn", "serverless_function"),
        cloud("flexscan", "vm2", provider="azure"),
    ]
    assert count("CWP_FLEXSCAN", rows) == 2


def agent_vm(rid: str, on: str = D1, provider: str = "aws", **kw: object) -> object:
    return obs(
        "cloud_agent",
        on,
        "virtual_machine",
        agent_id=f"ag-{rid}",
        cloud_provider=provider,
        cloud_resource_id=rid,
        **kw,
    )


def test_cwp_agent_components_and_flexscan_attribution_window() -> None:
    rows = [
        agent_vm("vm1", vuln_count=1, open_port_count=2),
        agent_vm("vm2", vuln_count=0, open_port_count=0),  # ghost: B
        agent_vm("vm3", provider="alibaba"),
        obs("cloud_agent", D1, "host", agent_id="ag-phys"),  # not a VM
        agent_vm("vm4"),
        cloud("flexscan", "vm4"),  # FlexScan also saw vm4 on D1: attributed to FlexScan
    ]
    sub = subscription(["CWP_AGENT"])
    m = run(sub, rows, "2026-04-01")
    assert series(m, "CWP_AGENT")[D1] == "1"
    assert usage_of(m, "CWP_AGENT").daily[m.as_of].components == {"A": 3, "B": 1}
    assert series(m, "CWP_AGENT")["2026-03-31"] == "1"  # D1 is day 90 of the look-back
    assert series(m, "CWP_AGENT")["2026-04-01"] == "2"  # FlexScan's sighting aged out


def test_cs_hourly_snapshots_with_heartbeats() -> None:
    rows = [
        obs(
            "container_sensor",
            D1,
            "container_node",
            node_id="n1",
            modules=["cs_runtime"],
            observed_at=f"2026-01-01T{h:02d}:00:00+00:00",
        )
        for h in range(0, 24)
    ]
    rows += [
        obs(
            "container_sensor",
            D1,
            "container_node",
            node_id="n2",
            modules=["cs_runtime"],
            observed_at="2026-01-01T10:30:00+00:00",
        ),
        obs(
            "container_sensor",
            D1,
            "container_node",
            node_id="n3",
            observed_at="2026-01-01T10:30:00+00:00",
        ),  # no runtime sensor
    ]
    sub = {"container": {"heartbeat_minutes": 60, "missed_heartbeats": 1}}
    # n1 every hour (24), n2 only at 11:00 (10:30 within (10:00, 11:00]) -> 25 / 24
    assert count("CS", rows, **sub) == Fraction(25, 24)
    sub = {"container": {"heartbeat_minutes": 15, "missed_heartbeats": 3}}
    # 45-minute window: n2's 10:30 heartbeat is seen at 11:00 only
    assert count("CS", rows, **sub) == Fraction(25, 24)


def test_cs_daily_feed_and_inactive_nodes() -> None:
    rows = [
        obs("container_sensor", D1, "container_node", node_id="n1", modules=["cs_runtime"]),
        obs(
            "container_sensor",
            D1,
            "container_node",
            node_id="n2",
            modules=["cs_runtime"],
            status="inactive",
        ),
    ]
    m = run(
        subscription(["CS"], container={"heartbeat_minutes": 1440, "missed_heartbeats": 1}),
        rows,
        D2,
    )
    assert series(m, "CS") == {D1: "1", D2: "0"}


def scan(at: str, digest: str = "sha256:aa", stage: str = "ci", on: str | None = None) -> object:
    return obs(
        "image_scanner",
        on or at[:10],
        "container_image_scan",
        image_digest=digest,
        pipeline_stage=stage,
        observed_at=at,
    )


def test_cis_pipeline_deduplication_and_rescans() -> None:
    rows = [
        scan("2026-01-01T08:00:00+00:00"),
        scan("2026-01-01T20:00:00+00:00", stage="registry"),  # within 24 h: same scan
        scan("2026-01-02T07:59:00+00:00", stage="registry"),  # 23:59 after: same scan
        scan("2026-01-02T08:00:00+00:00"),  # 24 h after the counted one: a rescan
        scan("2026-01-02T09:00:00+00:00", stage="runtime", digest="sha256:bb"),  # never
        scan("2026-01-02T09:00:00+00:00", digest="sha256:cc"),
    ]
    m = run(subscription(["CIS"]), rows, D2)
    assert series(m, "CIS") == {D1: "1", D2: "2"}
    assert usage_of(m, "CIS").window.utilization == 3


def test_sc_excludes_containers_on_counted_cs_nodes() -> None:
    rows = [
        obs("container_sensor", D1, "container_node", node_id="n1", modules=["cs_runtime"]),
        obs("serverless_sensor", D1, "serverless_container", instance_id="i1", node_id="n1"),
        obs("serverless_sensor", D1, "serverless_container", instance_id="i2", node_id="n9"),
        obs("serverless_sensor", D1, "serverless_container", instance_id="i3"),
        obs("serverless_sensor", D1, "serverless_container", instance_id="i3"),
        obs("serverless_sensor", D1, "serverless_container", instance_id="i4", status="deleted"),
    ]
    assert count("SC", rows) == 2


def test_sspm_counts_active_users_once_across_apps() -> None:
    rows = [
        obs("sspm", D1, "saas_user", identity_key="ann@example.com"),
        obs("sspm", D1, "saas_user", identity_key="ann@example.com", name="slack"),
        obs("sspm", D1, "saas_user", identity_key="bob@example.com", status="inactive"),
    ]
    assert count("SSPM", rows) == 1


def test_tas_weights_web_apps_and_api_endpoints() -> None:
    rows = [
        obs("tas", D1, "web_app", url=f"https://app{i}.example.com", modules=["tas"])
        for i in range(3)
    ]
    rows += [
        obs(
            "tas",
            D1,
            "api_endpoint",
            url="https://api.example.com/v1/users",
            http_method=m,
            modules=["tas"],
        )
        for m in ("GET", "POST", "GET")
    ]
    rows += [obs("tas", D1, "web_app", url="https://nomodule.example.com")]
    m = run(subscription(["TAS"]), rows, D1)
    assert value_on(m, "TAS", D1) == Fraction(32, 10)
    assert usage_of(m, "TAS").components == {"web_apps": 3, "api_endpoints": 2}


def test_was_counts_configured_web_apps() -> None:
    rows = [
        obs("was", D1, "web_app", url="https://a.example.com", modules=["was"]),
        obs(
            "was",
            D1,
            "web_app",
            url="https://b.example.com",
            modules=["was"],
            status="decommissioned",
        ),
        obs("tas", D1, "web_app", url="https://c.example.com", modules=["was"]),
    ]
    assert count("WAS", rows) == 1


def test_paf_counts_active_paf_agents() -> None:
    rows = [
        obs("cloud_agent", D1, agent_id="p1", modules=["paf"]),
        obs("cloud_agent", D1, agent_id="p2", modules=["paf"], status="inactive"),
        obs("scanner", D1, asset_id="p3", modules=["paf"]),
    ]
    assert count("PAF", rows) == 1


def test_fim_window_for_scanner_and_container_assets() -> None:
    rows = [
        obs("cloud_agent", "2026-02-15", agent_id="f1", modules=["fim"]),
        obs(
            "scanner",
            "2026-02-15",
            asset_id="f2",
            modules=["fim"],
            last_fim_event_at="2026-01-17T10:00:00+00:00",
        ),  # day 30 of the window: counts
        obs(
            "scanner",
            "2026-02-15",
            asset_id="f3",
            modules=["fim"],
            last_fim_event_at="2026-01-16T23:00:00+00:00",
        ),  # 31 days ago: not
        obs(
            "container_sensor",
            "2026-02-15",
            "container_node",
            node_id="n1",
            modules=["fim"],
            last_fim_event_at="2026-02-15T01:00:00+00:00",
        ),
        obs("scanner", "2026-02-15", asset_id="f4", modules=["fim"]),  # never sent an event
    ]
    assert count("FIM", rows, on="2026-02-15") == 3


def test_pci_counts_ips_and_dns_names_configured_for_pci() -> None:
    rows = [
        obs("pci_scanner", D1, "ip_address", ips=["203.0.113.5"], modules=["pci"]),
        obs("pci_scanner", D1, "ip_address", ips=["203.0.113.5"], modules=["pci"], name="b"),
        obs("pci_scanner", D1, "dns_name", fqdn="pay.example.com", modules=["pci"]),
        obs(
            "pci_scanner",
            D1,
            "dns_name",
            fqdn="old.example.com",
            modules=["pci"],
            status="inactive",
        ),
        obs("pci_scanner", D1, "ip_address", ips=["203.0.113.6"]),
    ]
    assert count("PCI", rows) == 2


def test_pm_and_elim() -> None:
    rows = [
        obs("cloud_agent", D1, agent_id="a1", modules=["pm", "isl"]),
        obs("cloud_agent", D1, agent_id="a2", modules=["mtg"]),
        obs("cloud_agent", D1, agent_id="a3", modules=["pm"], status="inactive"),
        obs("scanner", D1, asset_id="s1", modules=["isl"]),
    ]
    assert count("PM", rows, fed_high=True) == 2
    m = run(subscription(["ELIM"]), rows, D1)
    assert value_on(m, "ELIM", D1) == 3
    assert usage_of(m, "ELIM").components == {"pm": 1, "isl": 2, "mtg": 1}
