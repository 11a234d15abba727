"""GET /metrics over HTTP: the process collectors, HTTP latency per route pattern, firings per
automation. Series are read with prometheus_client's own parser of the text format."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import Bot

LATENCY = "inbox_http_request_duration_seconds"


async def scrape(bot: Bot) -> list[Sample]:
    resp = await bot.client.get("/metrics")
    assert resp.status == 200
    return [s for family in text_string_to_metric_families(await resp.text()) for s in family.samples]


def value(samples: Iterable[Sample], name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


async def test_process_and_platform_collectors_are_exported(bot: Bot) -> None:
    samples = await scrape(bot)
    names = {s.name for s in samples}
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
    ):
        assert name in names, name
    assert value(samples, "process_resident_memory_bytes") > 0  # type: ignore[operator]


async def test_http_latency_is_labelled_by_route_pattern_method_and_status(bot: Bot) -> None:
    sent = await bot.webhook("hello")
    cid = sent["conversation_id"]
    await bot.api("GET", f"/api/conversations/{cid}")
    await bot.api("GET", f"/api/conversations/{cid}")
    await bot.api("GET", "/api/conversations/999999", expect=404)
    await bot.api("GET", "/api/no/such/thing", expect=404)
    await bot.api("PUT", "/api/tags", expect=405)
    resp = await bot.client.request("PROPFIND", "/healthz")
    assert resp.status == 405
    samples = await scrape(bot)

    def count(route: str, method: str, status: str) -> float | None:
        return value(samples, f"{LATENCY}_count", route=route, method=method, status=status)

    assert count("/api/conversations/{id}", "GET", "200") == 2
    assert count("/api/conversations/{id}", "GET", "404") == 1
    assert count("/webhooks/{channel}", "POST", "200") == 1
    assert count("unmatched", "GET", "404") == 1  # no route: one series, whatever the path
    assert count("unmatched", "PUT", "405") == 1  # no route for that method either
    assert count("unmatched", "other", "405") == 1  # a rarer method does not make a series of its own
    # a histogram: the buckets are cumulative and +Inf holds every observation
    assert (
        value(samples, f"{LATENCY}_bucket", route="/api/conversations/{id}", method="GET", status="200", le="+Inf") == 2
    )
    routes = {s.labels["route"] for s in samples if s.name.startswith(LATENCY)}
    assert not any(str(cid) in r or "999999" in r or "no/such" in r for r in routes), routes


async def test_firings_are_counted_per_automation(bot: Bot) -> None:
    await bot.api("POST", "/api/tags", json={"name": "closing"}, expect=201)
    bye = await bot.api(
        "POST", "/api/automations", json={"name": "Bye", "keywords": "bye", "actions": [{"type": "resolve"}]},
        expect=201,
    )  # fmt: skip
    tag = await bot.api(
        "POST", "/api/automations", json={"name": "Tag", "keywords": "bye, thanks",
                                          "actions": [{"type": "tag", "tag": "closing"}]},
        expect=201,
    )  # fmt: skip
    await bot.webhook("bye", contact="c-1")  # both fire
    await bot.webhook("thanks", contact="c-2")  # only the tag one
    await bot.webhook("hello", contact="c-3")  # none
    samples = await scrape(bot)
    assert value(samples, "inbox_automation_firings_total", automation=str(bye["id"])) == 1
    assert value(samples, "inbox_automation_firings_total", automation=str(tag["id"])) == 2
    assert value(samples, "inbox_automation_runs_total") == 3  # the total is kept
