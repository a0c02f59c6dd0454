"""The SQL a plan compiles to, pinned per dialect: a change in it is a reviewed change."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from datasources.fno_demo.entities import DEMO_ENTITIES
from datasources.sql.statements import Statements
from datasources.sql.tables import entity_table
from gateway.kernel.catalog import EntityMetadata, resolve_catalog
from gateway.kernel.plan import (
    ChildPlan,
    Compare,
    Op,
    Or,
    OrderTerm,
    PageRequest,
    Quantifier,
    QueryPlan,
    RelationFilter,
    with_key_order,
)
from tests.golden import check_golden

CATALOG = resolve_catalog(DEMO_ENTITIES)
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.asyncpg.dialect()}


def statements(dialect: str) -> Statements:
    tables: dict[str, object] = {}

    def table_for(entity: EntityMetadata):  # type: ignore[no-untyped-def]
        return tables.setdefault(entity.name, entity_table(entity))

    return Statements(table_for, dialect)


def plan() -> QueryPlan:
    customer = CATALOG.entity("CustomerV3")
    header = CATALOG.entity("SalesOrderHeaderV2")
    line = CATALOG.entity("SalesOrderLine")
    big_line = RelationFilter(
        header.relation("Lines"),
        line,
        Quantifier.SOME,
        Compare("LineAmount", Op.GT, Decimal(10000)),
    )
    where = Or(
        (
            RelationFilter(customer.relation("SalesOrders"), header, Quantifier.SOME, big_line),
            Compare("OrganizationName", Op.CONTAINS, "50%_off"),
        )
    )
    orders = QueryPlan(
        header,
        ("SalesOrderNumber",),
        with_key_order(header, [OrderTerm("RequestedShippingDate", True, True)]),
        page=PageRequest(first=5),
        total=True,
    )
    return QueryPlan(
        customer,
        ("CustomerAccount", "CreditLimit"),
        with_key_order(customer, [OrderTerm("CreditLimit", True, True)]),
        where=where,
        page=PageRequest(first=20, after=(Decimal(5000), "usmf", "US-000010")),
        company="usmf",
        total=True,
        children=(ChildPlan("orders", customer.relation("SalesOrders"), orders),),
    )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compiled_sql(dialect: str) -> None:
    built = statements(dialect)
    root = plan()
    text = [
        "-- root page",
        str(built.root(root).compile(dialect=DIALECTS[dialect])),
        "-- sales orders of every customer on the page, five each",
        str(
            built.children(
                root.children[0], [("usmf", "US-000011"), ("usmf", "US-000012")]
            ).compile(dialect=DIALECTS[dialect])
        ),
    ]
    check_golden(f"customers-with-orders.{dialect}.sql", "\n".join(text) + "\n")
