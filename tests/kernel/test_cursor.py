"""Cursors round-trip every field type and refuse what they were not made for."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from datasources.fno_demo.entities import CUSTOMER, SALES_ORDER_HEADER
from gateway.kernel.cursor import decode_cursor, encode_cursor
from gateway.kernel.errors import BadUserInput
from gateway.kernel.plan import OrderTerm, with_key_order


def test_round_trip_of_typed_values() -> None:
    order = with_key_order(
        SALES_ORDER_HEADER,
        [OrderTerm("RequestedShippingDate", True), OrderTerm("OrderCreationDateTime")],
    )
    row = {
        "RequestedShippingDate": dt.date(2026, 2, 28),
        "OrderCreationDateTime": dt.datetime(2026, 2, 1, 8, 30, tzinfo=dt.UTC),
        "dataAreaId": "usmf",
        "SalesOrderNumber": "000042",
    }
    cursor = encode_cursor(order, row)
    assert decode_cursor(cursor, SALES_ORDER_HEADER, order) == tuple(row[t.field] for t in order)


def test_decimal_keeps_its_digits_and_nulls_survive() -> None:
    order = with_key_order(CUSTOMER, [OrderTerm("CreditLimit"), OrderTerm("PrimaryContactEmail")])
    row = {
        "CreditLimit": Decimal("12345678901234.56"),
        "PrimaryContactEmail": None,
        "dataAreaId": "usmf",
        "CustomerAccount": "A",
    }
    values = decode_cursor(encode_cursor(order, row), CUSTOMER, order)
    assert values == (Decimal("12345678901234.56"), None, "usmf", "A")


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", "WzEsWyJ4Il0sWzFdXQ"])
def test_malformed_or_foreign_cursors_are_refused(cursor: str) -> None:
    order = with_key_order(CUSTOMER, [])
    with pytest.raises(BadUserInput):
        decode_cursor(cursor, CUSTOMER, order)


def test_cursor_for_another_ordering_is_refused() -> None:
    mine = with_key_order(CUSTOMER, [OrderTerm("CreditLimit", True)])
    other = with_key_order(CUSTOMER, [OrderTerm("CreditLimit")])
    row = {"CreditLimit": Decimal(1), "dataAreaId": "usmf", "CustomerAccount": "A"}
    with pytest.raises(BadUserInput, match="another ordering"):
        decode_cursor(encode_cursor(mine, row), CUSTOMER, other)
