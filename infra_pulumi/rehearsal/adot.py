"""The ADOT collector sidecar cannot run here (its binary comes from a container registry, not
from PyPI, Debian or npm, and the collector publishes no JSON schema of its configuration).
Its configuration is checked structurally instead, against the documented configuration of
the components ADOT v0.40 ships and the task it scrapes:

- every component a pipeline names is defined, and every defined one is of a type ADOT ships;
- the prometheus receiver scrapes the API container's own port and `/metrics`, with the
  bearer token from an environment variable the container actually receives;
- the remote-write exporter has an https endpoint and authenticates with a defined sigv4auth
  extension that the service enables;
- processors use detectors and actions those processors document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Component types in the ADOT collector v0.40 distribution that this configuration may use.
SHIPPED = {
    "receivers": {"prometheus", "otlp", "awsecscontainermetrics"},
    "processors": {"batch", "resourcedetection", "resource", "attributes", "filter"},
    "exporters": {"prometheusremotewrite", "awsemf", "debug", "otlp"},
    "extensions": {"sigv4auth", "health_check", "pprof"},
}
RESOURCE_DETECTORS = {"env", "ecs", "ec2", "eks", "lambda", "system", "docker"}
RESOURCE_ACTIONS = {"insert", "update", "upsert", "delete", "hash", "extract", "convert"}
ENV_REFERENCE = re.compile(r"^\$\{env:([A-Z_][A-Z0-9_]*)\}$")


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def validate(config_text: str, api_port: int, container_env: Iterable[str]) -> list[str]:
    """Problems with the collector configuration; empty when it holds together."""
    config: Mapping[str, Any] = json.loads(config_text)
    problems: list[str] = []
    for section, shipped in SHIPPED.items():
        for component in config.get(section) or {}:
            if _type(component) not in shipped:
                problems.append(f"{section}.{component}: not a component ADOT v0.40 ships")
    service = config.get("service") or {}
    for extension in service.get("extensions") or []:
        if extension not in (config.get("extensions") or {}):
            problems.append(f"service.extensions: {extension} is not defined")
    pipelines = (service.get("pipelines") or {}).items()
    if not pipelines:
        problems.append("service.pipelines: none")
    for name, pipeline in pipelines:
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section) or []:
                if component not in (config.get(section) or {}):
                    problems.append(f"pipeline {name}: {section[:-1]} {component} is not defined")
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            problems.append(f"pipeline {name}: needs receivers and exporters")
    problems += _prometheus(config, api_port, set(container_env))
    problems += _remote_write(config, service)
    problems += _processors(config)
    return problems


def _prometheus(config: Mapping[str, Any], api_port: int, env: set[str]) -> list[str]:
    problems = []
    receiver = (config.get("receivers") or {}).get("prometheus") or {}
    scrapes = ((receiver.get("config") or {}).get("scrape_configs")) or []
    if not scrapes:
        return ["receivers.prometheus: no scrape_configs"]
    for scrape in scrapes:
        job = scrape.get("job_name", "?")
        targets = [t for static in scrape.get("static_configs") or [] for t in static["targets"]]
        if f"localhost:{api_port}" not in targets:
            problems.append(f"scrape {job}: does not scrape the API container (:{api_port})")
        if scrape.get("metrics_path", "/metrics") != "/metrics":
            problems.append(f"scrape {job}: metrics_path is not /metrics")
        credentials = str((scrape.get("authorization") or {}).get("credentials", ""))
        reference = ENV_REFERENCE.match(credentials)
        if reference is None:
            problems.append(f"scrape {job}: the bearer token must come from ${{env:...}}")
        elif reference.group(1) not in env:
            problems.append(f"scrape {job}: the container has no {reference.group(1)}")
    return problems


def _remote_write(config: Mapping[str, Any], service: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, exporter in (config.get("exporters") or {}).items():
        if _type(name) != "prometheusremotewrite":
            continue
        if not str(exporter.get("endpoint", "")).startswith("https://"):
            problems.append(f"exporters.{name}: endpoint must be https")
        authenticator = (exporter.get("auth") or {}).get("authenticator")
        if authenticator not in (service.get("extensions") or []):
            problems.append(f"exporters.{name}: authenticator {authenticator} is not enabled")
        elif _type(str(authenticator)) != "sigv4auth":
            problems.append(f"exporters.{name}: AMP needs sigv4auth")
        elif not (config["extensions"][authenticator] or {}).get("region"):
            problems.append(f"extensions.{authenticator}: region is required")
    return problems


def _processors(config: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, processor in (config.get("processors") or {}).items():
        if _type(name) == "resourcedetection":
            unknown = set(processor.get("detectors") or []) - RESOURCE_DETECTORS
            if unknown or not processor.get("detectors"):
                problems.append(f"processors.{name}: detectors {sorted(unknown) or 'missing'}")
        if _type(name) == "resource":
            for attribute in processor.get("attributes") or []:
                if attribute.get("action") not in RESOURCE_ACTIONS or not attribute.get("key"):
                    problems.append(f"processors.{name}: invalid attribute {attribute}")
    return problems
