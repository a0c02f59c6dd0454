"""Fuzzing the live gateway over HTTP with operations generated from its own schema
(hypothesis-graphql): valid queries and mutations with arbitrary arguments, and invalid
ones. Whatever is sent, the answer is never a 5xx, never an internal error, never a
leaked detail of the implementation, and its data fits the schema."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    execute,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_required_input_field,
    parse,
    print_schema,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from gateway.auth import Role
from tests.conftest import Gateway

LEAKS = re.compile(r"Traceback|File \"|sqlalchemy|asyncpg|sqlite3|psycopg|\.py\b", re.I)
SCALARS = {  # values of the gateway's own scalars, well-formed and not
    "Date": st.sampled_from(["2026-01-01", "0001-01-01", "2026-13-40", ""]).map(nodes.String),
    "DateTime": st.sampled_from(["2026-01-01T00:00:00Z", "1900-01-01T00:00:00", "x"]).map(
        nodes.String
    ),
    "Decimal": st.sampled_from(["0", "-1.5", "1e400", "NaN", "12345678901234567890.123"]).map(
        nodes.String
    ),
    "Long": st.integers(-(2**63), 2**63 - 1).map(nodes.Int),
    "JSON": st.just(nodes.Object([])),
}


def check(schema: GraphQLSchema, query: str, response: httpx.Response) -> None:
    assert response.status_code < 500, (query, response.text)
    body = response.json()
    assert "data" in body or "errors" in body, body
    for error in body.get("errors") or []:
        assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", (query, error)
        assert not LEAKS.search(error["message"]), (query, error)
    if body.get("data") is not None:
        conforms(schema, query, body["data"])


def conforms(schema: GraphQLSchema, query: str, data: dict[str, Any]) -> None:
    """Run the query over the response's own data: graphql-core then checks every value
    against the type the schema gives it (null where not allowed, wrong shapes)."""

    def by_response_key(source: Any, info: Any, **_: Any) -> Any:
        return source.get(info.path.key) if isinstance(source, dict) else None

    result = execute(
        schema,
        parse(query),
        root_value=data,
        field_resolver=by_response_key,
        type_resolver=lambda value, *_: value.get("__typename"),
    )
    problems = [e for e in result.errors or [] if "non-nullable" in e.message]
    assert not problems, (query, data, problems)


def test_generated_operations_never_break_the_gateway(
    control_plane: Callable[..., Gateway],
) -> None:
    """A few operations for every query and mutation field, then invalid documents."""
    gw = control_plane()
    sdl = print_schema(gw.runtime.schemas.current._schema)  # type: ignore[union-attr]
    schema = build_schema(sdl)  # no resolvers: `conforms` runs queries over responses
    admin = {"Authorization": f"Bearer {gw.token(Role.ADMIN, sub='admin@contoso.com')}"}
    client = httpx.Client(base_url=gw.url, headers=admin, timeout=30)

    def fuzz(operations: st.SearchStrategy[str], examples: int) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(operation=operations)
        def sent(operation: str) -> None:
            check(schema, operation, client.post("/graphql", json={"query": operation}))

        sent()

    try:
        assert schema.query_type is not None and schema.mutation_type is not None
        for name in schema.query_type.fields:
            fuzz(queries(sdl, fields=[name], custom_scalars=SCALARS), 3)
        for name in schema.mutation_type.fields:
            fuzz(mutations(sdl, fields=[name], custom_scalars=SCALARS), 3)
        fuzz(queries(sdl, custom_scalars=SCALARS, mode=Mode.NEGATIVE), 50)
    finally:
        client.close()


def minimal(kind: GraphQLInputType) -> Any:
    """A value of the type that parses: the smallest of each scalar, required fields only."""
    kind = get_nullable_type(kind)
    if isinstance(kind, GraphQLList):
        return [minimal(kind.of_type)]
    if isinstance(kind, GraphQLEnumType):
        return next(iter(kind.values))
    if isinstance(kind, GraphQLInputObjectType):
        return {n: minimal(f.type) for n, f in kind.fields.items() if is_required_input_field(f)}
    return {"Int": 0, "Long": 0, "Float": 0.0, "Boolean": False, "JSON": {}}.get(
        kind.name, "x" if kind.name in {"String", "ID"} else SCALAR_SAMPLES.get(kind.name, "x")
    )


SCALAR_SAMPLES = {"Date": "2026-01-01", "DateTime": "2026-01-01T00:00:00Z", "Decimal": "1"}


def oversized(kind: GraphQLInputType) -> Iterator[Any]:
    """Values past any column's width: each string field in turn 5,000 characters long,
    each list 200 items long (repeats included)."""
    kind = get_nullable_type(kind)
    if isinstance(kind, GraphQLList):
        yield [minimal(kind.of_type)] * 200
        yield from ([item] for item in oversized(kind.of_type))
    elif isinstance(kind, GraphQLInputObjectType):
        base = minimal(kind)
        for name, field in kind.fields.items():
            yield from ({**base, name: value} for value in oversized(field.type))
    elif isinstance(kind, GraphQLScalarType) and kind.name in {"String", "ID"}:
        yield "é" * 5000


def test_oversized_arguments_are_refused_plainly(
    control_plane: Callable[..., Gateway],
) -> None:
    """Every mutation with each of its arguments in turn past any width the stores keep:
    the answer is a result or a refusal, never an internal error (PostgreSQL enforces
    column widths that SQLite does not)."""
    gw = control_plane()
    schema = gw.runtime.schemas.current._schema  # type: ignore[union-attr]
    admin = {"Authorization": f"Bearer {gw.token(Role.ADMIN, sub='admin@contoso.com')}"}
    sent, problems = 0, []
    with httpx.Client(base_url=gw.url, headers=admin, timeout=30) as client:
        for name, field in schema.mutation_type.fields.items():
            declared = ", ".join(f"${a}: {arg.type}" for a, arg in field.args.items())
            passed = ", ".join(f"{a}: ${a}" for a in field.args)
            selection = " { __typename }" if not is_leaf_type(get_named_type(field.type)) else ""
            query = f"mutation({declared}) {{ {name}({passed}){selection} }}"
            base = {a: minimal(arg.type) for a, arg in field.args.items()}
            for argument, arg in field.args.items():
                for value in oversized(arg.type):
                    body = {"query": query, "variables": {**base, argument: value}}
                    response = client.post("/graphql", json=body)
                    sent += 1
                    if response.status_code >= 500:
                        problems.append((name, argument, response.text))
                        continue
                    for error in response.json().get("errors") or []:
                        internal = error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
                        if internal or LEAKS.search(error["message"]):
                            problems.append((name, argument, error["message"]))
    assert sent > 100
    assert not problems, problems
