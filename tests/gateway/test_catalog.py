"""The entity catalog: publish a new entity in the F&O store, refresh, make it visible, query it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from datasources.sql.engine import create_engine
from datasources.sql.metadata import publish_entity
from datasources.sql.tables import entity_table
from gateway.auth import Role
from gateway.kernel.catalog import EntityField, EntityMetadata, FieldType
from tests.conftest import ANONYMOUS, Gateway, run_sql

WAREHOUSE = EntityMetadata(
    name="WarehouseV2",
    collection_name="WarehousesV2",
    label="Warehouses",
    table="inventwarehousev2entity",
    fields=(
        EntityField(
            "dataAreaId", FieldType.STRING, "dataareaid", is_key=True, nullable=False, length=4
        ),
        EntityField(
            "WarehouseId", FieldType.STRING, "warehouseid", is_key=True, nullable=False, length=10
        ),
        EntityField("WarehouseName", FieldType.STRING, "warehousename", length=60),
        EntityField("Capacity", FieldType.INT, "capacity"),
    ),
    company_field="dataAreaId",
)

CATALOG = '{ entityCatalog(search: "warehouse") { name visible published refreshNeeded fields { name } } }'
SET_VISIBLE = "mutation($name: String!, $v: Boolean!) { setEntityVisible(name: $name, visible: $v) { name visible } }"
WAREHOUSES = '{ warehousesV2(company: "USMF") { nodes { warehouseId warehouseName capacity } } }'


def publish(url: str, entity: EntityMetadata) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(
                    lambda c: entity_table(entity, dialect_name=c.dialect.name).create(c)
                )
                await publish_entity(conn, entity)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_new_entity_reaches_the_schema_without_code_or_restart(
    fresh_gateway: Callable[..., Gateway],
) -> None:
    gw = fresh_gateway()
    admin = gw.token(Role.ADMIN)
    publish(gw.fno_url, WAREHOUSE)
    run_sql(
        gw.fno_url,
        "INSERT INTO inventwarehousev2entity VALUES ('usmf', 'WH-11', 'Main warehouse', 500)",
    )

    assert gw.data(CATALOG)["entityCatalog"] == []
    refreshed = gw.data("mutation { refreshCatalog { name visible } }", token=admin)[
        "refreshCatalog"
    ]
    assert {"name": "WarehouseV2", "visible": False} in refreshed
    assert "warehousesV2" in gw.error(WAREHOUSES)["message"]

    assert gw.data(SET_VISIBLE, {"name": "WarehouseV2", "v": True}, admin)["setEntityVisible"][
        "visible"
    ]
    assert gw.data(WAREHOUSES)["warehousesV2"]["nodes"] == [
        {"warehouseId": "WH-11", "warehouseName": "Main warehouse", "capacity": 500}
    ]
    assert gw.data(SET_VISIBLE, {"name": "WarehouseV2", "v": False}, admin)
    assert gw.error(WAREHOUSES)["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_changed_definition_is_flagged_until_refreshed(
    fresh_gateway: Callable[..., Gateway],
) -> None:
    gw = fresh_gateway()
    admin = gw.token(Role.ADMIN)
    publish(gw.fno_url, WAREHOUSE)
    gw.data("mutation { refreshCatalog { name } }", token=admin)
    gw.data(SET_VISIBLE, {"name": "WarehouseV2", "v": True}, admin)
    run_sql(
        gw.fno_url,
        "ALTER TABLE inventwarehousev2entity ADD COLUMN city VARCHAR(60)",
        "INSERT INTO sysdataentityfield (entity, name, ordinal, type, column_name, label, nullable,"
        " is_key, read_only, length) VALUES ('WarehouseV2', 'City', 4, 'String', 'city', 'City',"
        " true, false, false, 60)",
    )
    gw.data("mutation { refreshCatalog { name } }", token=admin)
    (entry,) = gw.data(CATALOG)["entityCatalog"]
    assert entry["refreshNeeded"] is True and {"name": "City"} not in entry["fields"]
    assert gw.error('{ warehousesV2(company: "USMF") { nodes { city } } }')

    gw.data('mutation { refreshEntity(name: "WarehouseV2") { name } }', token=admin)
    (entry,) = gw.data(CATALOG)["entityCatalog"]
    assert entry["refreshNeeded"] is False and {"name": "City"} in entry["fields"]
    assert (
        gw.data('{ warehousesV2(company: "USMF") { nodes { city } } }')["warehousesV2"]["nodes"]
        == []
    )


def test_catalog_mutations_need_an_admin(fresh_gateway: Callable[..., Gateway]) -> None:
    gw = fresh_gateway()
    mutation = 'mutation { setEntityVisible(name: "VendorGroup", visible: true) { visible } }'
    assert gw.error(mutation, token=ANONYMOUS)["extensions"]["code"] == "UNAUTHENTICATED"
    assert gw.error(mutation, token=gw.token(Role.READER))["extensions"]["code"] == "FORBIDDEN"
    response = gw.client.post(
        "/graphql", json={"query": mutation}, headers={"Authorization": "Bearer not-a-token"}
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (
        gw.error(
            'mutation { setEntityVisible(name: "Nope", visible: true) { visible } }',
            token=gw.token(Role.ADMIN),
        )["extensions"]["code"]
        == "NOT_FOUND"
    )
    assert gw.data(mutation, token=gw.token(Role.ADMIN))["setEntityVisible"]["visible"] is True
    assert (
        gw.data('{ vendorGroups(company: "DEMF") { totalCount } }')["vendorGroups"]["totalCount"]
        == 4
    )


def test_reads_need_credentials_unless_anonymous_reads_are_on(
    fresh_gateway: Callable[..., Gateway],
) -> None:
    query = "{ legalEntities { totalCount } }"
    gw = fresh_gateway()
    assert gw.error(query, token=ANONYMOUS)["extensions"]["code"] == "UNAUTHENTICATED"
    assert gw.data(query, token=gw.token(Role.READER))["legalEntities"]["totalCount"] == 3
    open_gw = fresh_gateway(anonymous_reads=True)
    assert open_gw.data(query, token=ANONYMOUS)["legalEntities"]["totalCount"] == 3


def test_a_request_in_flight_keeps_the_schema_it_started_with(
    fresh_gateway: Callable[..., Gateway],
) -> None:
    gw = fresh_gateway()
    started_on = gw.runtime.schemas.current
    assert started_on is not None
    hide = 'mutation { setEntityVisible(name: "CustomerV3", visible: false) { visible } }'
    gw.data(hide, token=gw.token(Role.ADMIN))
    assert gw.runtime.schemas.current is not started_on
    assert (
        gw.error('{ customersV3(company: "USMF") { totalCount } }')["extensions"]["code"]
        == "GRAPHQL_VALIDATION_FAILED"
    )

    from gateway.auth import ANONYMOUS_READER
    from schema.context import RequestContext

    runtime = gw.runtime
    context = RequestContext(ANONYMOUS_READER, runtime.fno, runtime.catalog, runtime.limits)
    old = asyncio.run_coroutine_threadsafe(
        started_on.execute(
            '{ customersV3(company: "USMF") { totalCount } }', context_value=context
        ),
        gw.loop,
    ).result(timeout=10)
    assert old.errors is None
    assert old.data == {"customersV3": {"totalCount": 10}}


def test_the_business_event_catalog_follows_the_visible_entities(
    fresh_gateway: Callable[..., Gateway],
) -> None:
    gw = fresh_gateway()
    query = """query($c: String) { businessEventCatalog(category: $c) {
      id category majorVersion minorVersion entity schema } }"""
    assert gw.error(query, token=ANONYMOUS)["extensions"]["code"] == "UNAUTHENTICATED"
    events = gw.data(query)["businessEventCatalog"]
    ids = [e["id"] for e in events]
    assert "CustomerCreditLimitChangedBusinessEvent" in ids and "CustomerV3CreatedDataEvent" in ids
    assert "VendorGroupUpdatedDataEvent" not in ids  # not visible
    limit = next(e for e in events if e["id"] == "CustomerCreditLimitChangedBusinessEvent")
    assert limit["schema"]["required"][:3] == [
        "BusinessEventId",
        "BusinessEventLegalEntity",
        "ControlNumber",
    ]
    assert (limit["majorVersion"], limit["minorVersion"]) == (1, 0)

    gw.data(
        'mutation { setEntityVisible(name: "VendorGroup", visible: true) { visible } }',
        token=gw.token(Role.ADMIN),
    )
    data = gw.data(query, {"c": "Data events"})["businessEventCatalog"]
    assert "VendorGroupUpdatedDataEvent" in [e["id"] for e in data]
    assert {e["category"] for e in data} == {"Data events"}
