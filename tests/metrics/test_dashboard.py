"""docs/grafana-katcpx.json: valid JSON, a well-formed Grafana dashboard, and every metric
its queries name is one katcpx really serves."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from .conftest import TIMEOUT, Web, fetch, fetch_blocking

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-katcpx.json"
METRIC = re.compile(r"\b(katcpx?_[a-z_]+)\b")


def queries(dashboard: dict) -> list[str]:
    found = []
    for panel in dashboard["panels"]:
        found += [t["expr"] for t in panel.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            found.append(var["query"]["query"])
    return found


def test_dashboard_is_valid_json_and_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert titles == {"Device sensors", "katcpx server health"}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for expr in queries(dashboard):
        for used in re.findall(r"\$(\w+)", expr):
            assert used in variables, (expr, used)


async def test_dashboard_queries_name_real_metrics(web: Web) -> None:
    """Every metric named in a query appears in a real scrape of katcpx-web and a server."""
    registry = CollectorRegistry(auto_describe=False)
    endpoint = web.device.start_metrics_server(0, registry=registry)
    try:
        served = await fetch(web.metrics_url)
        health = await asyncio.wait_for(asyncio.to_thread(fetch_blocking, endpoint.url), TIMEOUT)
    finally:
        endpoint.close()
    names = set()
    for scrape in (served, health):
        for _, samples in scrape.families.values():
            names.update(s.name for s in samples)
    # docs/monitoring.md names every family served, too.
    doc = (DASHBOARD.parent / "monitoring.md").read_text()
    for scrape in (served, health):
        for family in scrape.families:
            if family.startswith("katcp"):
                assert re.search(rf"`{family}(_total|_info)?[`{{]", doc), family
    used = {m for expr in queries(json.loads(DASHBOARD.read_text())) for m in METRIC.findall(expr)}
    assert used, "no metrics found in the dashboard's queries"
    assert used - names == set(), (
        f"the dashboard names metrics katcpx does not serve: {used - names}"
    )
