"""The pinned versions of the local stack, read from ``deploy/local/pom.xml``.

The POM is the one place versions are written; Maven fetches the jars and
archives it names, and this module reads its ``<properties>`` so the rest of
cdcflow (status output, cache paths) agrees with it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StackError

__all__ = ["Versions", "deploy_dir", "load_versions"]

_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def deploy_dir() -> Path:
    """``deploy/local`` of this checkout (the package is installed editable)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "deploy" / "local"
        if (candidate / "pom.xml").is_file():
            return candidate
    raise StackError(
        "deploy/local/pom.xml not found next to the pipeline package",
        hint="run cdcflow from a checkout of the repository (pip install -e .)",
    )


@dataclass(frozen=True)
class Versions:
    kafka: str
    debezium: str
    registry: str
    log4j: str
    slf4j: str
    postgresql_major: str
    registry_java_min: int
    pom: Path


def load_versions(pom: Path | None = None) -> Versions:
    """Read the pinned versions.

    Raises:
        StackError: the POM is missing or lacks a version property.
    """
    pom = pom or deploy_dir() / "pom.xml"
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise StackError(f"cannot read pinned versions from {pom}: {exc}") from exc
    props = root.find("m:properties", _NS)
    values = {child.tag.split("}", 1)[1]: (child.text or "").strip() for child in (props or [])}

    def need(name: str) -> str:
        if not values.get(name):
            raise StackError(f"{pom} has no <{name}> property")
        return values[name]

    return Versions(
        kafka=need("kafka.version"),
        debezium=need("debezium.version"),
        registry=need("registry.version"),
        log4j=need("log4j.version"),
        slf4j=need("slf4j.version"),
        postgresql_major=need("postgresql.major"),
        registry_java_min=int(need("registry.java.min")),
        pom=pom,
    )
