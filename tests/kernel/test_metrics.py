"""bot.metrics on prometheus_client: names, labels and the text format scrapers parse, one registry per app."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_histograms_and_scrape_time_gauges_render_as_prometheus_text() -> None:
    metrics = Metrics()
    metrics.inc("siyu_callbacks_total", platform="wecom", kind="text", outcome="stored")
    metrics.inc("siyu_callbacks_total", 2, platform="wecom", kind="text", outcome="stored")
    metrics.observe("siyu_handler_seconds", 0.01, kind="text")  # on a bucket bound: counted in it (le)
    metrics.observe("siyu_handler_seconds", 7.0, kind="text")
    text = metrics.render(
        {
            "siyu_database_up": ("1 when the database answered.", {(): 1.0}),
            "siyu_outbox_backlog": ("Outbox rows not final yet.", {(("state", "pending"),): 3.0}),
        }
    )
    assert "# TYPE siyu_callbacks_total counter" in text
    assert "# TYPE siyu_handler_seconds histogram" in text
    assert "# TYPE siyu_database_up gauge" in text
    assert 'siyu_callbacks_total{kind="text",outcome="stored",platform="wecom"} 3.0' in text.splitlines()
    assert "_created" not in text
    found = samples(text)
    assert found[("siyu_handler_seconds_bucket", (("kind", "text"), ("le", "0.005")))] == 0
    assert found[("siyu_handler_seconds_bucket", (("kind", "text"), ("le", "0.01")))] == 1
    assert found[("siyu_handler_seconds_bucket", (("kind", "text"), ("le", "5.0")))] == 1
    assert found[("siyu_handler_seconds_bucket", (("kind", "text"), ("le", "+Inf")))] == 2
    assert found[("siyu_handler_seconds_count", (("kind", "text"),))] == 2
    assert found[("siyu_handler_seconds_sum", (("kind", "text"),))] == pytest.approx(7.01)
    assert found[("siyu_database_up", ())] == 1
    assert found[("siyu_outbox_backlog", (("state", "pending"),))] == 3


def test_value_and_total_read_counters() -> None:
    metrics = Metrics()
    assert metrics.value("siyu_dedup_hits_total", platform="mp", kind="text") == 0
    metrics.inc("siyu_dedup_hits_total", platform="mp", kind="text")
    metrics.inc("siyu_dedup_hits_total", platform="wecom", kind="text")
    metrics.inc("siyu_connections_closed_total", reason="evicted")
    assert metrics.value("siyu_dedup_hits_total", platform="mp", kind="text") == 1
    assert metrics.total("siyu_dedup_hits_total") == 2
    assert metrics.value("siyu_connections_closed_total", reason="evicted") == 1


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.inc("siyu_callbacks_total", platform="wecom", kind="text", outcome="stored")
    second.inc("siyu_callbacks_total", platform="mp", kind="text", outcome="stored")
    assert first.total("siyu_callbacks_total") == second.total("siyu_callbacks_total") == 1
    assert 'platform="mp"' not in first.render()


def test_counter_names_end_in_total() -> None:
    with pytest.raises(ValueError, match="end in _total"):
        Metrics().inc("siyu_callbacks", platform="wecom")
