"""What-if: the same inventory metered under changed subscription terms, side by side with
the current terms (``qlumeter whatif``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from qlumeter.config import ConfigError, Subscription, parse_subscription
from qlumeter.numbers import fmt


def changed_terms(
    sub: Subscription, sets: Sequence[str], adds: Sequence[str], removes: Sequence[str]
) -> Subscription:
    """``sub`` with the changes applied, validated like any subscription.

    ``sets``: ``CODE.key=value`` (a product's term) or ``key=value`` (a subscription key);
    ``adds``: ``CODE:key=value[,key=value]`` (a product added with its terms);
    ``removes``: ``CODE`` (a product dropped)."""
    data: dict[str, Any] = sub.model_dump(mode="json")
    products: dict[str, Any] = data["products"]
    for change in adds:
        code, _, terms = change.partition(":")
        code = code.strip().upper()
        if code in products:
            raise ConfigError(f"--add {change}: {code} is in the subscription already (--set)")
        products[code] = dict(_pair(term, "--add") for term in terms.split(",") if term)
    for change in sets:
        key, value = _pair(change, "--set")
        code, dot, term = key.partition(".")
        if not dot:
            data[key] = value
            continue
        code = code.upper()
        if code not in products:
            raise ConfigError(f"--set {change}: {code} is not in the subscription (--add it)")
        products[code][term] = value
    for code in removes:
        if products.pop(code.strip().upper(), None) is None:
            raise ConfigError(f"--remove {code}: not in the subscription")
    return parse_subscription(data)


def _pair(text: str, option: str) -> tuple[str, Any]:
    """``KEY=VALUE``: a value as it would be written in the subscription's JSON (true,
    false, null, a whole number, a list or a mapping), else text (decimals stay text:
    exact)."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise ConfigError(f"{option} {text}: expected KEY=VALUE")
    value = value.strip()
    if value in ("true", "false", "null") or value[:1] in ("[", "{") or value.isdigit():
        try:
            return key.strip(), json.loads(value)
        except ValueError:
            raise ConfigError(f"{option} {text}: {value} is not valid JSON") from None
    return key.strip(), value


def compare(
    current: dict[str, Any], changed: dict[str, Any], added: Sequence[str]
) -> dict[str, Any]:
    """Current and changed summaries product by product and in total, with a note for
    each added product the inventory gives no usage for."""
    now = {p["product"]: p for p in current["products"]}
    then = {p["product"]: p for p in changed["products"]}
    rows = []
    for code in [*now, *(c for c in then if c not in now)]:
        before, after = now.get(code), then.get(code)
        old = Decimal(before["qlus"]) if before else Decimal(0)
        new = Decimal(after["qlus"]) if after else Decimal(0)
        rows.append(
            {
                "product": code,
                "current_qlus": before["qlus"] if before else None,
                "changed_qlus": after["qlus"] if after else None,
                "difference": fmt(new - old),
            }
        )
    notes = [
        f"{code}: the inventory gives it no usage as of {changed['as_of']} (no rows of the"
        " asset types or modules it counts): 0 QLUs until such data arrives"
        for code in added
        if code in then and Decimal(then[code]["utilization"]) == 0
    ]
    total = Decimal(changed["total_qlus"]) - Decimal(current["total_qlus"])
    return {
        "as_of": current["as_of"],
        "products": rows,
        "total": {
            "current_qlus": current["total_qlus"],
            "changed_qlus": changed["total_qlus"],
            "difference": fmt(total),
        },
        "notes": notes,
    }


def render(comparison: dict[str, Any]) -> str:
    """The comparison as a table."""
    head = ("product", "current QLUs", "changed QLUs", "difference")
    rows = [
        (r["product"], r["current_qlus"] or "-", r["changed_qlus"] or "-", _signed(r))
        for r in comparison["products"]
    ]
    total = comparison["total"]
    rows.append(("total", total["current_qlus"], total["changed_qlus"], _signed(total)))
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(4)]
    lines = [
        "  ".join(
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [head, *rows]
    ]
    title = f"what if, as of {comparison['as_of']}"
    return "\n".join([title, *lines, *comparison["notes"]]) + "\n"


def _signed(row: dict[str, Any]) -> str:
    value = str(row["difference"])
    return value if value.startswith("-") or Decimal(value) == 0 else f"+{value}"
