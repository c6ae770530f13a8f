"""Reading /metrics the way Prometheus does, for the metrics tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def families(text: str) -> dict[str, str]:
    """Family name (counters without `_total`) -> type."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def samples(text: str, name: str) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample with exactly these labels, or None when there is none."""
    for sample in samples(text, name):
        if sample.labels == labels:
            return sample.value
    return None
