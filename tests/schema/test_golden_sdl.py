"""The schema generated from the demo catalog, pinned as SDL."""

from __future__ import annotations

from datasources.fno_demo.entities import DEMO_ENTITIES
from gateway.kernel.catalog import resolve_catalog
from schema.builder import build_schema
from tests.golden import check_golden


def test_demo_catalog_sdl() -> None:
    check_golden("demo.graphql", build_schema(resolve_catalog(DEMO_ENTITIES)).as_str() + "\n")


def test_builds_do_not_share_types() -> None:
    first = build_schema(resolve_catalog(DEMO_ENTITIES))
    second = build_schema(resolve_catalog(DEMO_ENTITIES[:3]))
    assert first.as_str() != second.as_str()
    assert "SalesOrderLine" not in second.as_str()
