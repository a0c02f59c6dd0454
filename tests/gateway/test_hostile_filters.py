"""Filter values written to break out of SQL never reach its text: every statement the
store runs is recorded, and the values appear only among its parameters. Wildcards in
`contains` and `startsWith` match themselves, and nothing in the store changes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from tests.conftest import READ_PATHS, Gateway, sql_value

HOSTILE = [
    "'; DROP TABLE custcustomerv3entity; --",
    "x' OR '1'='1",
    'x" OR "1"="1',
    "') OR 1=1 --",
    "%",
    "_",
    "\\",
    "US-%' UNION SELECT name FROM sqlite_master --",
    "$1",
    ":name",
]
OPERATORS = ["eq", "neq", "contains", "startsWith", "gt"]


@pytest.mark.parametrize("gateway", [p for p in READ_PATHS if p != "postgresql"], indirect=True)
def test_hostile_filter_values_stay_parameters(gateway: Gateway) -> None:
    """The PostgreSQL fast path goes to asyncpg below SQLAlchemy, where statements cannot
    be recorded; it is compiled from the same plan as the others."""
    store = gateway.runtime.fno
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engines = {store.engine.sync_engine, store.reader.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    customers = sql_value(gateway.fno_url, "SELECT count(*) FROM custcustomerv3entity")
    try:
        for value in HOSTILE:
            for operator in OPERATORS:
                body = gateway.query(
                    'query($v: String!) { customersV3(company: "USMF", first: 5, where: '
                    f"{{customerAccount: {{{operator}: $v}}}}) {{ nodes {{ customerAccount }} }} }}",
                    {"v": value},
                )
                assert "errors" not in body, (value, operator, body)
                accounts = [n["customerAccount"] for n in body["data"]["customersV3"]["nodes"]]
                if operator in ("eq", "contains", "startsWith"):
                    assert accounts == [], (value, operator)  # matched literally: nothing
            literal = _graphql_string(value)  # the same, written into the query text
            inline = gateway.query(
                '{ customersV3(company: "USMF", where: {organizationName: {contains: '
                + literal
                + "}}) { totalCount } }"
            )
            assert inline["data"]["customersV3"]["totalCount"] == 0, (value, inline)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    assert statements
    for statement in statements:
        for value in HOSTILE:
            if len(value) > 2:
                assert value not in statement, (value, statement)
    assert sql_value(gateway.fno_url, "SELECT count(*) FROM custcustomerv3entity") == customers


def _graphql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.parametrize("gateway", READ_PATHS, indirect=True)
def test_values_a_store_cannot_hold_are_refused_plainly(gateway: Gateway) -> None:
    """PostgreSQL keeps no NUL character in text and no value past a column's width;
    SQLite keeps both. Either way the answer is data or BAD_USER_INPUT, on every path."""
    for value in ["a\x00b", "é" * 5000]:
        for operator in OPERATORS:
            body = gateway.query(
                'query($v: String!) { customersV3(company: "USMF", first: 5, where: '
                f"{{customerAccount: {{{operator}: $v}}}}) {{ nodes {{ customerAccount }} }} }}",
                {"v": value},
            )
            for error in body.get("errors") or []:
                assert error["extensions"]["code"] == "BAD_USER_INPUT", (operator, error)
            if "errors" not in body and operator in ("eq", "contains", "startsWith"):
                assert body["data"]["customersV3"]["nodes"] == [], (operator, body)
