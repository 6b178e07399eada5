"""What is written down outside its home agrees with it (docs/architecture.md lists the
homes): the summary schema's enumerations with the catalog, ``publishing`` and the tenant
pattern; the documented sources, products and tables with the code."""

from __future__ import annotations

import re
from pathlib import Path

from qlumeter.catalog import PRODUCTS
from qlumeter.paths import TENANT_ID_PATTERN
from qlumeter.pipeline import dynamo
from qlumeter.publishing import EVENT_TYPES
from qlumeter.summary import json_schema
from qlumeter.vocabulary import ASSET_TYPES, PRODUCT_CODES, SOURCES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section(text: str, heading: str) -> str:
    """A markdown section's text, up to the next heading of its level or above."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n") + len(heading)
    end = re.search(rf"^#{{1,{len(level)}}} ", text[start:], re.M)
    return text[start : start + end.start()] if end else text[start:]


def table(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table that starts with ``header``, cells stripped."""
    lines = text[text.index(header) :].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_catalog_lists_the_product_codes_in_order() -> None:
    assert list(PRODUCTS) == list(PRODUCT_CODES)
    assert all(PRODUCTS[code].code == code for code in PRODUCTS)


def test_the_summary_schema_enumerates_the_catalog_and_the_event_types() -> None:
    properties = json_schema()["properties"]
    product = properties["products"]["items"]["properties"]["product"]
    assert product["enum"] == list(PRODUCT_CODES)
    assert properties["event_type"]["enum"] == list(EVENT_TYPES)
    assert properties["subscription_id"]["pattern"] == f"^{TENANT_ID_PATTERN.pattern}$"


def test_the_inventory_format_lists_the_sources() -> None:
    text = (DOCS / "inventory-format.md").read_text()
    rows = table(text, "| source | sends | read by |")
    documented = [name for row in rows for name in re.findall(r"`([a-z_]+)`", row[0])]
    assert sorted(documented) == sorted(SOURCES)
    assert f"one of the following {len(SOURCES)} names" in text
    asset_types = table(text, "| field | type | default | normalization and rules |")
    (row,) = [r for r in asset_types if r[0] == "`asset_type`"]
    assert set(re.findall(r"`([a-z_]+)`", row[3])) == set(ASSET_TYPES)


def test_the_metering_rules_describe_every_product_in_order() -> None:
    products = section((DOCS / "metering.md").read_text(), "## 11. The products")
    assert re.findall(r"^### ([A-Z_]+): ", products, re.M) == list(PRODUCT_CODES)


def test_the_tables_are_documented_as_the_store_has_them() -> None:
    def keys(text: str, header: str) -> list[tuple[str, str]]:
        return [(row[0], row[1].replace("`", "")) for row in table(text, header)]

    assert dynamo.__doc__
    code = keys(dynamo.__doc__, "| table | keys | model |")
    docs = keys((DOCS / "pipeline.md").read_text(), "| table | keys | items | access patterns |")
    assert docs == [*code, ("idempotency", "id")]  # the last: Powertools' own table
    assert {table for table, _ in code} == set(dynamo.TABLES)
