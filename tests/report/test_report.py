"""The HTML report: its figures against the summary and the metering, escaping, no network
resource, and a real headless Chromium drawing it without console errors."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from qlumeter.catalog import PRODUCTS
from qlumeter.config import Subscription, load_subscription
from qlumeter.metering import Metering, usage_as_of
from qlumeter.numbers import fmt4
from qlumeter.summary import product_entry
from qlumeter_cli.local import meter_folder
from qlumeter_cli.problems import crossing_lines, describe_alert, forecast_line
from qlumeter_cli.report import MAX_REJECTS, intervals, read_series, render_html
from qlumeter_cli.sample import write_sample
from tests.support import subscription, write_file

XSS = "<script>alert(1)</script>"
AS_OF = date(2026, 2, 10)
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

Metered = tuple[dict[str, Any], Metering, Subscription]


class Page(HTMLParser):
    """The parts of a page the tests read: tables by id, attributes and element counts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[tuple[str | None, list[str]]]] = {}
        self.attributes: list[tuple[str, str, str]] = []
        self.tags: dict[str, int] = {}
        self.text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag == "table":
            self._table = found.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append((found.get("class"), []))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table: str) -> list[list[str]]:
        """The body rows' cells (the header row left out)."""
        return [cells for _, cells in self.tables[table][1:]]


def agent(i: int, **fields: Any) -> dict[str, Any]:
    row = {"asset_type": "host", "agent_id": f"a{i}", "fqdn": f"h{i}.corp.example"}
    return row | {"modules": ["vmdr"], "vuln_count": i % 3} | fields


def meter_small(root: Path, rounding: str) -> Metered:
    """A few weeks of agents, OT assets, CSPM workloads with gaps, image scans and bad files,
    metered as of 2026-02-10 (the third 15-day interval)."""
    for n, on in enumerate(["2026-01-01", "2026-01-07", "2026-01-20", "2026-02-02"]):
        write_file(root, "cloud_agent", on, [agent(i) for i in range(3 + 2 * n)])
    for on, count in [("2026-01-03", 7), ("2026-01-18", 5), ("2026-02-05", 8)]:
        levels = ["basic", "enriched", "vulnerable", "enriched"]
        rows = [{"asset_type": "ot_asset", "asset_id": f"plc{i}"} for i in range(count)]
        write_file(
            root, "ot_sensor", on, [r | {"ot_level": levels[i % 4]} for i, r in enumerate(rows)]
        )
    for on in ["2026-01-02", "2026-01-03", "2026-01-10", "2026-02-01", "2026-02-09"]:
        vms = [
            {
                "asset_type": "virtual_machine",
                "cloud_provider": "aws",
                "cloud_resource_id": f"vm{i}",
            }
            for i in range(int(on[-2:]) % 7 + 2)
        ]
        write_file(root, "cspm", on, vms)
        scans = [
            {"asset_type": "container_image_scan", "image_digest": f"sha256:{i:064x}"}
            for i in range(int(on[-2:]) % 4 + 1)
        ]
        write_file(root, "image_scanner", on, scans, fmt="jsonl")
    bad = [agent(90, ip=XSS), agent(91, status="<b>gone</b>")]
    write_file(root, "scanner", "2026-01-08", bad)
    odd = (
        root / "inventory" / "tenant=acme" / "source=scanner" / "date=<img src=x onerror=alert(1)>"
    )
    odd.mkdir(parents=True)
    (odd / "x.csv").write_text("asset_type\nhost\n")
    ratios = {"ETM": "3", "CSAM": "1", "VMDR": "1.5", "VMDR_OT": "1.5", "CSPM": "12", "CIS": "0.12"}
    products: dict[str, Any] = {code: {"ratio": r} for code, r in ratios.items()}
    products["ELIM"] = {"ratio": "5.7", "active_from": "2026-03-01"}
    sub = subscription(products, entitlement_qlus="40", rounding={"utilization": rounding})
    document, metering, _ = meter_folder(sub, root / "inventory", AS_OF)
    return document, metering, sub


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Metered:
    return meter_small(tmp_path_factory.mktemp("small"), "half_up")


@pytest.fixture(scope="module")
def small_exact(tmp_path_factory: pytest.TempPathFactory) -> Metered:
    """The small tenant with exact utilization (OT's 2/3 weights show 4 decimals)."""
    return meter_small(tmp_path_factory.mktemp("small-exact"), "exact")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Metered:
    """The 90-day sample tenant metered as of 2026-03-31."""
    root = tmp_path_factory.mktemp("sample")
    path, _ = write_sample(root)
    sub = load_subscription(path)
    document, metering, _ = meter_folder(sub, root / "inventory", date(2026, 3, 31))
    return document, metering, sub


@pytest.fixture(params=["small", "small_exact", "sample"])
def metered(request: pytest.FixtureRequest) -> Metered:
    result: Metered = request.getfixturevalue(request.param)
    return result


def test_every_product_has_its_section_figures_and_one_chart(metered: Metered) -> None:
    document, _, sub = metered
    html = render_html(document, sub)
    page = Page(html)
    as_of = date.fromisoformat(document["summary"]["as_of"])
    products = document["summary"]["products"]
    charted = [p for p in products if sub.product_start(p["product"]) <= as_of]
    assert page.tags["svg"] == len(charted) and html.count("<svg") == len(charted)
    overview = {row[0]: row for row in page.rows("overview")}
    for p in products:
        code = p["product"]
        assert f'id="p-{code}"' in html and p["name"] in "".join(page.text)
        assert overview[code][4:7] == [p["utilization"], p["ratio"], p["qlus"]] or (
            p["included_with"] and overview[code][6] == f"{p['qlus']} included with ETM"
        )
        if p in charted:
            assert f'id="chart-{code}"' in html
    assert overview["total"][6] == document["summary"]["total_qlus"]
    if "ELIM" in sub.products and sub.product_start("ELIM") > as_of:
        assert "Active from 2026-03-01: no day to show yet." in html


def test_interval_tables_match_the_summary_and_the_metering(metered: Metered) -> None:
    """The current interval's row is the summary's figures; a closed interval's row is what
    the summary said (from the exact daily values) as of its last day: the same with
    utilization rounded half up, within the last digit with exact utilization."""
    document, metering, sub = metered
    page = Page(render_html(document, sub))
    as_of = metering.as_of
    for usage in metering.products:
        entry = next(p for p in document["summary"]["products"] if p["product"] == usage.code)
        if usage.product.window != "peak15" or sub.product_start(usage.code) > as_of:
            continue
        table = page.tables[f"intervals-{usage.code}"]
        current = [cells for css, cells in table if css == "marked"]
        assert len(current) == 1 and current[0][0].endswith("(current)")
        assert current[0][1:] == [
            entry["window_start"],
            entry["window_end"],
            entry["peak_day"] or "—",
            entry["utilization"],
            entry["qlus"],
        ]
        for _, start, end, peak, utilization, qlus in page.rows(f"intervals-{usage.code}"):
            then = min(date.fromisoformat(end), as_of)
            past = usage_as_of(sub, usage.code, then, usage.daily, usage.covered or set())
            expected = product_entry(sub, past)
            assert [start, peak, utilization] == [
                expected["window_start"],
                expected["peak_day"] or "—",
                expected["utilization"],
            ]
            if sub.rounding.utilization == "half_up":
                assert qlus == expected["qlus"]
            else:
                assert abs(Decimal(qlus) - Decimal(expected["qlus"])) <= Decimal("0.0001")


def test_intervals_recompute_the_summary_from_the_daily_values(metered: Metered) -> None:
    """The last interval recomputed from the document's daily values is the summary's window
    (with utilization rounded half up, its QLUs too)."""
    document, _, sub = metered
    as_of = date.fromisoformat(document["summary"]["as_of"])
    for entry in document["summary"]["products"]:
        code = entry["product"]
        if PRODUCTS[code].window != "peak15" or sub.product_start(code) > as_of:
            continue
        current = intervals(sub, code, read_series(document["daily"][code], as_of), as_of)[-1]
        computed = product_entry(sub, current)
        for key in ("window_start", "window_end", "peak_day", "utilization"):
            assert computed[key] == entry[key], (code, key)
        if sub.rounding.utilization == "half_up":
            assert computed["qlus"] == entry["qlus"], code


def test_rolling_lines_end_at_the_exact_window_utilization(metered: Metered) -> None:
    document, metering, sub = metered
    html = render_html(document, sub)
    for usage in metering.products:
        window = usage.product.window
        if window == "peak15":
            continue
        name = "90-day rolling average" if window == "avg90" else "90-day rolling sum"
        latest = f"{name} ({metering.as_of}: {fmt4(usage.window.utilization)})"
        section = html[html.index(f'id="p-{usage.code}"') :]
        assert latest in section[: section.index("</section>")]


def test_days_without_a_coverage_file_are_marked(small: Metered) -> None:
    document, _, sub = small
    html = render_html(document, sub)
    section = html[html.index('id="p-CSPM"') :]
    section = section[: section.index("</section>")]
    assert any(not row["covered"] for row in document["daily"]["CSPM"])
    assert 'class="gap"' in section and "no cspm file that day: not in the average" in section
    assert 'class="gap"' not in html[: html.index('id="p-CSPM"')]


def test_covered_is_optional_in_the_daily_rows(small: Metered) -> None:
    """Without the key, every day present in the series counts as covered."""
    document, _, sub = small
    daily = {
        code: [{"day": r["day"], "value": r["value"]} for r in rows]
        for code, rows in document["daily"].items()
    }
    html = render_html(document | {"daily": daily}, sub)
    assert 'class="gap"' not in html and 'class="bar uncovered"' not in html


def test_hostile_text_is_escaped(small: Metered) -> None:
    document, _, sub = small
    html = render_html(document, sub)
    rejects = Page(html).rows("rejects")
    assert [r for r in rejects if XSS in r[3]], "the rejected row keeps its reason, as text"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "date=&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html and "<img" not in html and "<b>gone" not in html
    assert Page(html).tags.get("script") is None


def test_html_a_forged_summary_is_escaped_everywhere(small: Metered) -> None:
    """A summary read back from a stack is not trusted: every text it carries (the plan,
    its caption, alerts, products, published messages) is escaped, markup or not."""
    document, _, sub = small
    summary = dict(document["summary"])
    summary.update(
        revision=XSS,
        generated_at=XSS,
        plan={
            "plan": XSS,
            "subscription_type": XSS,
            "measures": [{"measure": XSS, "count": XSS, "cap": XSS}],
            "own_network_addresses": XSS,
        },
        alerts=[{"type": XSS, XSS: XSS, "sample": [XSS]}],
        products=[
            dict(p, name=XSS, peak_day=XSS, components={XSS: XSS}) for p in summary["products"]
        ],
    )
    messages = [{"event_type": XSS, "as_of": XSS, "revision": XSS, "total_qlus": XSS}, XSS]
    html = render_html(document | {"summary": summary, "messages": messages}, sub)
    assert "<script" not in html
    assert Page(html).tags.get("script") is None
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") > 2 * len(summary["products"])


def test_no_resource_comes_from_the_network(metered: Metered) -> None:
    document, _, sub = metered
    html = render_html(document, sub)
    page = Page(html)
    linked = [
        (tag, name, value)
        for tag, name, value in page.attributes
        if name in ("src", "href", "srcset", "action", "xlink:href", "data", "poster")
    ]
    assert linked and all(value.startswith("#") for _, _, value in linked), linked
    assert "http://" not in html and "https://" not in html
    assert "url(" not in html and "@import" not in html and "@font-face" not in html
    assert page.tags.get("link") is None and page.tags.get("script") is None


def test_the_page_is_accessible(small: Metered) -> None:
    document, _, sub = small
    html = render_html(document, sub)
    page = Page(html)
    assert html.startswith('<!DOCTYPE html>\n<html lang="en">')
    head = html[: html.index("</head>")]
    assert head.count("<title>") == 1 and f"<title>QLU usage of acme as of {AS_OF}</title>" in head
    assert page.tags["h1"] == 1 and page.tags["h2"] >= 3
    tables = re.findall(r"<table.*?</table>", html, flags=re.S)
    assert len(tables) == len(page.tables) >= 4
    for table in tables:
        head = re.fullmatch(r".*?<thead><tr>(.*?)</tr></thead>.*", table, flags=re.S)
        assert head, table[:200]
        cells = re.findall(r"<(t[hd])\b([^>]*)>", head.group(1))
        assert cells and all(tag == "th" and 'scope="col"' in attrs for tag, attrs in cells)
    assert page.tags["section"] >= len(document["summary"]["products"]) + 2


def test_alerts_show_their_type_and_fields(small: Metered) -> None:
    document, _, sub = small
    late = {"type": "late_file_ignored", "path": "tenant=acme/<b>x</b>.csv", "day": "2026-01-09"}
    summary = document["summary"] | {"alerts": [*document["summary"]["alerts"], late]}
    page = Page(render_html(document | {"summary": summary}, sub))
    alerts = page.rows("alerts")
    assert document["summary"]["alerts"], "40 QLUs of entitlement: the thresholds are reached"
    assert "source_missing" in [a["type"] for a in summary["alerts"]], "no cloud_agent file"
    for alert, (kind, details) in zip(summary["alerts"], alerts, strict=True):
        assert kind == alert["type"]
        if kind == "source_missing":  # in words
            assert details == describe_alert(alert)
            assert details.startswith(f"source {alert['source']}: no readable file since")
        else:
            assert details == "; ".join(f"{k} {v}" for k, v in alert.items() if k != "type")


def test_published_messages_are_listed(small: Metered) -> None:
    document, _, sub = small
    summary = document["summary"]
    messages = [
        summary,
        json.dumps(summary | {"event_type": "correction", "revision": 2}),
        {"event_type": "ingest_failed", "key": "k"},
        "not json <i>",
    ]
    page = Page(render_html(document | {"messages": messages}, sub))
    assert page.rows("messages-table") == [
        ["usage_summary", summary["as_of"], "1", summary["total_qlus"]],
        ["correction", summary["as_of"], "2", summary["total_qlus"]],
        ["ingest_failed", "—", "—", "—"],
        ["(unreadable) 'not json <i>'", "—", "—", "—"],
    ]
    assert "messages-table" not in render_html(document, sub)


def test_rejected_rows_are_capped(small: Metered) -> None:
    document, _, sub = small
    many = [
        {"path": "p.csv", "line": i, "field": "ip", "reason": "bad"} for i in range(MAX_REJECTS + 7)
    ]
    page = Page(render_html(document | {"ingest": {"files": [], "rejects": many}}, sub))
    assert len(page.rows("rejects")) == MAX_REJECTS
    assert "7 more rejected rows not shown." in "".join(page.text)


def test_a_document_of_another_subscription_is_refused(small: Metered) -> None:
    document, _, sub = small
    other = sub.model_copy(update={"subscription_id": "other"})
    with pytest.raises(ValueError, match="the document is of 'acme', not 'other'"):
        render_html(document, other)


# -- a real browser -------------------------------------------------------------------------


def require_chromium() -> None:
    """Skip when Chromium is missing, except under CI (``CI`` set), where that fails."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run must call tests/report/install_browser.sh")
    pytest.skip(f"{CHROMIUM} is not installed (tests/report/install_browser.sh installs it)")


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_a_missing_browser_skips_only_outside_ci(
    ci: str, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "none")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"install_browser\.sh"):
        require_chromium()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian Chromium through Selenium, with the browser log on."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def severe(browser: Any) -> list[dict[str, Any]]:
    """The console errors logged since the last call."""
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


DRAWN = """
return [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const bars = [...svg.querySelectorAll('rect.bar')].filter(r => r.getBBox().height > 0);
  return {id: svg.id, width: box.width, height: box.height, bars: bars.length};
});
"""


# The projection drawn on each chart: its dashed line and band, by chart.
PROJECTED = """
const found = {};
for (const svg of document.querySelectorAll('svg.chart')) {
  const line = svg.querySelector('path.projected'), band = svg.querySelector('path.projband');
  if (line) {
    const [l, b] = [line.getBBox(), band.getBBox()];
    found[svg.id] = [{width: l.width, height: l.height}, {width: b.width, height: b.height}];
  }
}
return found;
"""
FORECAST = "return [...document.querySelectorAll('header #forecast li')].map(li => li.textContent)"


def test_each_chart_continues_with_its_projection(small: Metered) -> None:
    """As of 2026-02-10 (within an interval): every charted product's projection is drawn
    to its forecast day, and the forecast is at the top of the page."""
    document, _, sub = small
    html = render_html(document, sub)
    summary = document["summary"]
    ahead = {f["product"]: f for f in summary["forecast"]["products"]}
    for p in summary["products"]:
        code = p["product"]
        if sub.product_start(code) > AS_OF:
            continue
        chart = html[html.index(f'id="chart-{code}"') :]
        chart = chart[: chart.index("</svg>")]
        assert chart.count('class="projected"') == chart.count('class="projband"') == 1, code
        assert f"forecast {ahead[code]['day']}: " in chart, code
    top = html[: html.index("<main")]
    assert forecast_line(summary["forecast"]) in top
    for line in crossing_lines(summary["forecast"]):
        assert escape(line) in top


def test_the_browser_draws_every_chart_without_console_errors(
    sample: Metered, browser: Any, tmp_path: Path
) -> None:
    document, _, sub = sample
    started = time.monotonic()
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><title>c</title><script>console.error("seen")</script>')
    browser.get(control.as_uri())
    assert ["seen" in e["message"] for e in severe(browser)] == [True], "the log is read"
    hostile = document["ingest"]["rejects"] + [
        {"path": XSS, "line": 1, "field": "f", "reason": XSS}
    ]
    document = document | {
        "ingest": document["ingest"] | {"rejects": hostile},
        "messages": [document["summary"]],
    }
    page = tmp_path / "report.html"
    page.write_text(render_html(document, sub), encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title == "QLU usage of acme-demo as of 2026-03-31"
    charts = browser.execute_script(DRAWN)
    assert [c["id"] for c in charts] == [
        f"chart-{p['product']}" for p in document["summary"]["products"]
    ]
    for chart in charts:
        assert chart["width"] > 600 and chart["height"] > 100, chart
        assert chart["bars"] > 0, chart
    projected = browser.execute_script(PROJECTED)
    rolling = [p["product"] for p in document["summary"]["products"] if p["window"] != "peak15"]
    assert sorted(projected) == sorted(f"chart-{code}" for code in rolling)
    for chart, (line, band) in projected.items():
        assert line["width"] > 0 and band["width"] > 0 and band["height"] >= 0, chart
    forecast = browser.execute_script(FORECAST)
    assert forecast[0] == forecast_line(document["summary"]["forecast"]), forecast
    assert forecast[1:] == crossing_lines(document["summary"]["forecast"])
    assert browser.execute_script("return document.scripts.length") == 0
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert not severe(browser)
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"report {page}, screenshot {shot}, {time.monotonic() - started:.1f} s in the browser")
