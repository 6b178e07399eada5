"""The closed vocabularies of the inventory contract (spec sections 3 and 7)."""

from __future__ import annotations

SOURCES: frozenset[str] = frozenset(
    {
        "cloud_agent",
        "scanner",
        "csp_connector",
        "easm",
        "passive_sensor",
        "caps",
        "active_directory",
        "vmware",
        "cmdb",
        "third_party",
        "idp",
        "mobile_agent",
        "intune",
        "ot_sensor",
        "cspm",
        "flexscan",
        "cdr",
        "container_sensor",
        "serverless_sensor",
        "image_scanner",
        "sspm",
        "tas",
        "was",
        "pci_scanner",
    }
)

#: Sources whose host / virtual_machine rows are host-like entities (section 4).
HOST_SOURCES: frozenset[str] = frozenset(
    {
        "cloud_agent",
        "scanner",
        "csp_connector",
        "easm",
        "passive_sensor",
        "caps",
        "active_directory",
        "vmware",
        "cmdb",
        "third_party",
    }
)

#: Inventory-only sources: excluded from CSAM, not "live" for purge rules.
INVENTORY_ONLY_SOURCES: frozenset[str] = frozenset(
    {"easm", "passive_sensor", "caps", "active_directory", "vmware", "cmdb"}
)

#: Sources whose cloud workloads are cloud entities keyed by provider and resource id.
CLOUD_SOURCES: frozenset[str] = frozenset({"cspm", "flexscan", "cdr"})

ASSET_TYPES: frozenset[str] = frozenset(
    {
        "host",
        "virtual_machine",
        "serverless_function",
        "container_node",
        "serverless_container",
        "container_image_scan",
        "web_app",
        "api_endpoint",
        "identity",
        "saas_user",
        "mobile_device",
        "ot_asset",
        "ip_address",
        "dns_name",
        "cloud_resource",
    }
)

AGENT_TYPES: frozenset[str] = frozenset({"standard", "zlinux", "edr_sensor"})
CLOUD_PROVIDERS: frozenset[str] = frozenset({"aws", "azure", "gcp", "oci", "alibaba"})
PIPELINE_STAGES: frozenset[str] = frozenset({"ci", "registry", "runtime"})
OT_LEVELS: frozenset[str] = frozenset({"basic", "enriched", "vulnerable"})

REMOVED_STATUSES: frozenset[str] = frozenset(
    {"decommissioned", "deregistered", "deleted", "terminated"}
)
INACTIVE_STATUSES: frozenset[str] = frozenset({"inactive", "disabled"})
STATUSES: frozenset[str] = frozenset({"active", "enabled"}) | REMOVED_STATUSES | INACTIVE_STATUSES

MODULES: frozenset[str] = frozenset(
    {"vmdr", "pc", "edr", "fim", "paf", "pm", "isl", "mtg", "tas", "was", "pci", "cs_runtime"}
)

#: Product codes in the order summaries list them (spec section 7).
PRODUCT_CODES: tuple[str, ...] = (
    "ETM",
    "CSAM",
    "ETM_ID",
    "VMDR",
    "VMDR_MOBILE",
    "VMDR_OT",
    "EDR",
    "ZLINUX",
    "CSPM",
    "CWP_AGENT",
    "CWP_FLEXSCAN",
    "CDR",
    "CS",
    "CIS",
    "SC",
    "SSPM",
    "TAS",
    "WAS",
    "PC",
    "PAF",
    "FIM",
    "PCI",
    "PM",
    "ELIM",
)

#: Products that may only be enabled on a Fed High subscription.
FED_HIGH_PRODUCTS: frozenset[str] = frozenset({"WAS", "PM"})
