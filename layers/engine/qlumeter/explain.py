"""Why a number is what it is: one product on one day, entity by entity."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .catalog import DayValue
from .config import Subscription
from .metering import Batch, effective_as_of, meter_days
from .numbers import fmt4
from .plans import plan_alerts
from .summary import product_entry


@dataclass
class Explanation:
    """The window and the day's value of one product, with the entities behind them."""

    entry: dict[str, Any]  # the product's summary entry as of the day
    day: date
    value: str
    components: dict[str, str]
    counted: list[tuple[str, str]]  # (entity, why), a sample
    counted_total: int
    excluded: list[tuple[str, str]]  # (entity, the rule that left it out), a sample
    excluded_total: int
    per_source: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    plan: list[dict[str, Any]] = field(default_factory=list)  # plan counts against caps


def explain(
    sub: Subscription,
    batches: Iterable[Batch],
    code: str,
    day: date,
    sample: int = 10,
) -> Explanation:
    """Explain product ``code`` as of ``day`` from the days' readable files and their rows
    (``meter_days``)."""
    if code not in sub.products:
        raise ValueError(f"product {code} is not in subscription {sub.subscription_id}")
    day = effective_as_of(sub, day)
    metering, state = meter_days(sub, batches, day, detail_day=day, explain=code)
    usage = next(u for u in metering.products if u.code == code)
    counts = metering.plan.counts if metering.plan else {}
    plan: list[dict[str, Any]] = [
        {"measure": name, "count": counts.get(name, 0), "cap": cap}
        for name, cap in sub.plan_caps().items()
    ]
    plan += [a for a in plan_alerts(sub, metering.plan) if a["type"] == "own_network_scanned"]
    value: DayValue | None = usage.daily.get(day)
    explained = state.explained
    counted = dict(value.counted or {}) if value else {}
    excluded = list(explained.excluded) if explained else []
    per_source: Counter[str] = Counter()
    paths: set[str] = set()
    for entity in counted:
        shown = explained.shown.get(entity, []) if explained else []
        per_source.update({row.source for row in shown})
        paths.update(row.path for row in shown)
    return Explanation(
        entry=product_entry(sub, usage),
        day=day,
        value=fmt4(value.value) if value else "0",
        components={k: fmt4(v) for k, v in (value.components if value else {}).items()},
        counted=sorted(counted.items())[:sample],
        counted_total=len(counted),
        excluded=sorted(excluded)[:sample],
        excluded_total=len(excluded),
        per_source=dict(sorted(per_source.items())),
        files=sorted(paths),
        plan=plan,
    )


def render(x: Explanation) -> str:
    """The explanation as text for a terminal."""
    e = x.entry
    lines = [
        f"{e['product']} ({e['name']}) as of {x.day}",
        f"window {e['window']} {e['window_start']}..{e['window_end']}: utilization "
        f"{e['utilization']} x ratio {e['ratio']} = {e['qlus']} QLUs"
        + (f" (included with {e['included_with']})" if e.get("included_with") else ""),
    ]
    if e.get("peak_day"):
        lines.append(f"peak day: {e['peak_day']}")
    if e.get("covered_days") is not None:
        lines.append(f"covered days: {e['covered_days']}")
    lines.append(f"value on {x.day}: {x.value}")
    if x.components:
        lines.append("components: " + ", ".join(f"{k}={v}" for k, v in x.components.items()))
    lines.append(
        "counted per source: " + (", ".join(f"{s}={n}" for s, n in x.per_source.items()) or "none")
    )
    lines.append(f"counted entities: {x.counted_total} (sample)")
    lines += [f"  {entity}: {why}" for entity, why in x.counted]
    lines.append(f"left out: {x.excluded_total} (sample)")
    lines += [f"  {entity}: {why}" for entity, why in x.excluded]
    for item in x.plan:
        if item.get("type") == "own_network_scanned":
            lines.append(
                f"own networks scanned: {item['count']} addresses, e.g. "
                + ", ".join(item["sample"])
            )
        else:
            lines.append(f"plan {item['measure']}: {item['count']} of cap {item['cap']}")
    lines.append(f"input files behind the counted entities: {len(x.files)}")
    lines += [f"  {path}" for path in x.files[:20]]
    if len(x.files) > 20:
        lines.append(f"  ... {len(x.files) - 20} more")
    return "\n".join(lines)
