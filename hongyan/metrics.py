"""Prometheus metrics, read from the runtime's own counters when scraped.

Counting happens where the work is done anyway (writer, dispatcher, recorder,
notifier), so the hot path pays nothing extra for metrics.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry


class _RuntimeCollector:
    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def collect(self):
        s = self.runtime.stats()
        yield CounterMetricFamily("hongyan_commits", "Group commits by the writer", value=s["writer"]["commits"])
        yield CounterMetricFamily("hongyan_writer_jobs", "Jobs committed by the writer", value=s["writer"]["jobs"])
        yield CounterMetricFamily("hongyan_messages_claimed", "Messages claimed for sending",
                                  value=s["dispatch"]["claimed"])
        yield CounterMetricFamily("hongyan_submits_recorded", "Messages the carrier accepted",
                                  value=s["recorded"]["sent"])
        yield CounterMetricFamily("hongyan_reports_recorded", "Delivery reports recorded",
                                  value=s["recorded"]["reports"])
        yield CounterMetricFamily("hongyan_pushes", "Events pushed to customers", value=s["pushed"])
        yield CounterMetricFamily("hongyan_push_failures", "Failed push attempts", value=s["push_failures"])
        up = GaugeMetricFamily("hongyan_channel_connected", "1 when the channel is bound", labels=["channel"])
        queued = GaugeMetricFamily("hongyan_channel_queued", "Messages held by the channel", labels=["channel"])
        for ch in s["channels"]:
            up.add_metric([ch["name"]], 1 if ch["connected"] else 0)
            queued.add_metric([ch["name"]], ch["queued"])
        yield up
        yield queued


def render_metrics(runtime) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_RuntimeCollector(runtime))
    return generate_latest(registry), CONTENT_TYPE_LATEST
