"""Plan caps and consultant subscriptions (spec section 11).

Each day the plan's measures are counted from the same entity states as the products
(the replay keeps them with the product totals, ``timeline``): distinct (network, IP)
pairs of host-like entities' active ``scanner`` and ``cloud_agent`` states, and web apps
with an active ``tas`` or ``was`` state. A consultant subscription's scanner rows of the
day with an address in its own networks are listed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from .config import Subscription
from .observation import Observation

LEVELS = ("0.8", "1.0")  # plan_cap alert levels, fractions of a cap
SAMPLE = 10


@dataclass(frozen=True)
class PlanDay:
    """The plan's measures on one day, and the own-network addresses scanned."""

    counts: dict[str, int] = field(default_factory=dict)
    own_network: list[str] = field(default_factory=list)


@lru_cache(maxsize=65536)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def own_network_addresses(sub: Subscription, today: Iterable[Observation]) -> list[str]:
    """A consultant subscription's scanner addresses of the day in its own networks."""
    if sub.subscription_type != "consultant":
        return []
    networks = sub.own_networks
    own = {
        ip
        for obs in today
        if obs.source == "scanner"
        for ip in obs.ips
        if any(_address(ip) in network for network in networks)
    }
    return sorted(own, key=lambda ip: (_address(ip).version, _address(ip)))


def plan_alerts(sub: Subscription, day: PlanDay | None) -> list[dict[str, Any]]:
    """The conditions in force on the day: caps at 80% or more, own networks scanned."""
    if day is None:
        return []
    alerts: list[dict[str, Any]] = []
    for name, cap in sub.plan_caps().items():
        count = day.counts.get(name, 0)
        reached = [level for level in LEVELS if count >= Decimal(level) * cap]
        if reached:
            alerts.append(
                {
                    "type": "plan_cap",
                    "measure": name,
                    "count": count,
                    "cap": cap,
                    "level": reached[-1],
                }
            )
    if day.own_network:
        alerts.append(
            {
                "type": "own_network_scanned",
                "count": len(day.own_network),
                "sample": day.own_network[:SAMPLE],
            }
        )
    return alerts


def plan_entry(sub: Subscription, day: PlanDay | None) -> dict[str, Any]:
    """The summary's ``plan`` (added to v1): the plan, its caps and the day's counts."""
    if not sub.plan_caps() and sub.subscription_type != "consultant":
        return {}
    caps = sub.plan_caps()
    counts = day.counts if day else {}
    return {
        "plan": {
            "plan": sub.plan,
            "subscription_type": sub.subscription_type,
            "measures": [
                {"measure": name, "count": counts.get(name, 0), "cap": cap}
                for name, cap in caps.items()
            ],
            "own_network_addresses": len(day.own_network) if day else 0,
        }
    }
