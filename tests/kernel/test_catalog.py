"""Catalog resolution: what can be exposed, and what is refused with a reason."""

from __future__ import annotations

import dataclasses

import pytest

from datasources.fno_demo.entities import CUSTOMER, DEMO_ENTITIES, SALES_ORDER_HEADER
from gateway.kernel.catalog import entity_from_dict, entity_to_dict, resolve_catalog
from gateway.kernel.errors import CatalogError


def test_metadata_survives_its_snapshot_form() -> None:
    for entity in DEMO_ENTITIES:
        assert entity_from_dict(entity_to_dict(entity)) == entity


def test_relations_to_entities_that_are_not_visible_are_dropped() -> None:
    catalog = resolve_catalog([CUSTOMER, SALES_ORDER_HEADER])
    assert [r.name for r in catalog.entity("CustomerV3").relations] == ["SalesOrders"]
    assert [r.name for r in catalog.entity("SalesOrderHeaderV2").relations] == ["Customer"]


def test_version_follows_the_definitions() -> None:
    first = resolve_catalog(DEMO_ENTITIES)
    assert resolve_catalog(reversed(DEMO_ENTITIES)).version == first.version
    changed = dataclasses.replace(CUSTOMER, label="Clients")
    others = [e for e in DEMO_ENTITIES if e is not CUSTOMER]
    assert resolve_catalog([changed, *others]).version != first.version


def test_invalid_catalogs_are_refused() -> None:
    with pytest.raises(CatalogError, match="published twice"):
        resolve_catalog([CUSTOMER, CUSTOMER])
    keyless = dataclasses.replace(
        CUSTOMER, name="Keyless", collection_name="Keyless", fields=CUSTOMER.fields[2:]
    )
    with pytest.raises(CatalogError, match="no key"):
        resolve_catalog([keyless])
    clash = dataclasses.replace(SALES_ORDER_HEADER, collection_name="CustomersV3")
    with pytest.raises(CatalogError, match="share the collection name"):
        resolve_catalog([CUSTOMER, clash])
