"""The OData renderer and metadata reader on their own: F&O's dialect (no `in`, `*`
wildcards, qualified enum literals), quoting, SQL's three-valued logic kept, and an
F&O-shaped `$metadata` read into the same entities the demo store publishes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from datasources.fno_demo.entities import DEMO_ENTITIES
from datasources.odata.csdl import read_metadata
from datasources.odata.endpoint import Dialect, Endpoint
from datasources.odata.query import Renderer
from gateway.kernel.catalog import FieldType
from gateway.kernel.errors import BadUserInput, UpstreamFailed
from gateway.kernel.plan import Compare, Not, Op, OrderTerm

METADATA = Path(__file__).parents[1] / "peers" / "odata" / "fno.xml"
SERVICE = read_metadata(METADATA.read_bytes())
CUSTOMER = SERVICE.entity("CustomerV3")


def render(dialect: Dialect, *where: object) -> list[str]:
    r = Renderer(SERVICE, dialect)
    return [r.where(CUSTOMER, w) for w in where]  # type: ignore[arg-type]


def test_metadata_becomes_the_demo_stores_entities_without_their_row_versions() -> None:
    demo = {e.name: e for e in DEMO_ENTITIES}
    assert {e.name for e in SERVICE.entities} == set(demo)
    for entity in SERVICE.entities:
        expected = demo[entity.name]
        assert entity.collection_name == expected.collection_name
        assert entity.company_field == expected.company_field
        published = [f for f in expected.fields if f.name != "RecVersion"]
        assert [f.name for f in entity.fields] == [f.name for f in published]
        for got, want in zip(entity.fields, published, strict=True):
            assert (got.type, got.is_key, got.length) == (want.type, want.is_key, want.length)
            if want.type is FieldType.REAL:
                assert (got.precision, got.scale) == (want.precision, want.scale)
            if want.enum is not None:
                assert got.enum is not None
                assert [(m.symbol, m.value) for m in got.enum.members] == [
                    (m.symbol, m.value) for m in want.enum.members
                ]
        assert {(r.name, r.target, r.cardinality, r.constraints) for r in entity.relations} == {
            (r.name, r.target, r.cardinality, r.constraints) for r in expected.relations
        }


def test_fno_dialect_has_no_in_and_matches_text_by_wildcard() -> None:
    listed, contains, starts = render(
        Dialect.FNO,
        Compare("CustomerGroupId", Op.IN, ("10", "20")),
        Compare("OrganizationName", Op.CONTAINS, "O'Brien"),
        Compare("OrganizationName", Op.STARTS_WITH, "Contoso"),
    )
    assert " in " not in listed
    assert "(CustomerGroupId eq '10') or (CustomerGroupId eq '20')" in listed
    assert "OrganizationName eq '*O''Brien*'" in contains
    assert "OrganizationName eq 'Contoso*'" in starts
    with pytest.raises(BadUserInput, match="wildcard"):
        render(Dialect.FNO, Compare("OrganizationName", Op.CONTAINS, "5*"))


def test_standard_dialect_uses_its_functions() -> None:
    listed, contains = render(
        Dialect.STANDARD,
        Compare("CustomerGroupId", Op.IN, ("10", "20")),
        Compare("OrganizationName", Op.CONTAINS, "Ab"),
    )
    assert "CustomerGroupId in ('10','20')" in listed
    assert "contains(tolower(OrganizationName),'ab')" in contains


def test_enums_are_qualified_literals_and_rows_come_back_as_numbers() -> None:
    (where,) = render(Dialect.FNO, Compare("OnHoldStatus", Op.EQ, 0))
    assert "OnHoldStatus eq Microsoft.Dynamics.DataEntities.CustVendorBlocked'No'" in where
    r = Renderer(SERVICE, Dialect.FNO)
    assert r.value(CUSTOMER.field("OnHoldStatus"), "All") == 2
    with pytest.raises(UpstreamFailed, match="OnHoldStatus"):
        r.value(CUSTOMER.field("OnHoldStatus"), "Sometimes")


def test_three_valued_logic_survives_negation() -> None:
    """`not (x eq 'a')` must not match an empty x, as in SQL: each side is guarded."""
    (negated,) = render(Dialect.FNO, Not(Compare("PrimaryContactEmail", Op.EQ, "a@b.c")))
    assert negated == "(PrimaryContactEmail ne null) and (PrimaryContactEmail ne 'a@b.c')"


def test_values_render_and_read_back_exactly() -> None:
    r = Renderer(SERVICE, Dialect.FNO)
    limit, created = CUSTOMER.field("CreditLimit"), CUSTOMER.field("CreatedDateTime")
    assert r.literal(CUSTOMER, limit, Decimal("12345678901234567.123456")) == (
        "12345678901234567.123456"
    )
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert r.literal(CUSTOMER, created, moment) == "2026-01-02T03:04:05Z"
    assert r.value(created, "2026-01-02T03:04:05Z") == moment
    assert r.value(created, "1900-01-01T12:00:00Z") is None  # F&O's empty date


def test_nulls_sort_where_the_plan_asks() -> None:
    r = Renderer(SERVICE, Dialect.STANDARD)
    up_nulls_last = r.order(CUSTOMER, [OrderTerm("PrimaryContactEmail")])
    assert up_nulls_last == "PrimaryContactEmail eq null asc,PrimaryContactEmail asc"
    key_only = r.order(CUSTOMER, [OrderTerm("CustomerAccount", descending=True)])
    assert key_only == "CustomerAccount desc"


def test_store_urls_name_secrets_by_reference_only() -> None:
    found = Endpoint.parse(
        "https://contoso.operations.dynamics.com/data?tenant=t1&client_id=app"
        "&client_secret=env:FNO_SECRET"
    )
    assert found.root == "https://contoso.operations.dynamics.com/data/"
    assert found.dialect is Dialect.FNO
    assert found.scope == "https://contoso.operations.dynamics.com/.default"
    assert found.token_url == "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
    with pytest.raises(BadUserInput, match="never the secret itself"):
        Endpoint.parse("https://x/data/?tenant=t&client_id=a&client_secret=hunter2")
    with pytest.raises(BadUserInput, match="together"):
        Endpoint.parse("https://x/data/?tenant=t")
    with pytest.raises(BadUserInput, match="over https"):
        Endpoint.parse("http://contoso.operations.dynamics.com/data/")
    with pytest.raises(BadUserInput, match="token authority is reached over https"):
        Endpoint.parse("https://x/data/?authority=http://login.example.com")
    with pytest.raises(BadUserInput, match="unknown"):
        Endpoint.parse("https://x/data/?password=x")
    assert Endpoint.parse("https://org.crm.dynamics.com/api/data/v9.2/").dialect is (
        Dialect.STANDARD
    )
