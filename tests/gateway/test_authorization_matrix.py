"""The authorization matrix, generated from the schema: every mutation and every query
field, sent by every role (and by a caller with no credentials), is allowed exactly
when the role holds what the field needs.

What a field needs is declared in tests/golden/authorization.json for the control plane,
and follows from the field's kind for entities (reads: reader; create, update, delete:
writer), so a field added to the schema is covered at once: one the table does not know
fails this test until its role is declared.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    get_named_type,
    is_leaf_type,
)

from gateway.auth import Role
from gateway.demo_tenant import ADMINISTRATOR, ENVIRONMENT
from tests.conftest import ANONYMOUS, Gateway

TABLE = Path(__file__).parents[1] / "golden" / "authorization.json"
ORDER = ["anonymous", "reader", "writer", "admin"]  # each holds what those before it do
DENIED = {"UNAUTHENTICATED", "FORBIDDEN"}
REAL = {  # arguments that name something real, so a refusal cannot come from a lookup
    "environment": f'"{ENVIRONMENT}"',
    "confirmEnvironmentName": f'"{ENVIRONMENT}"',
    "addIn": '"PlanningOptimization"',
}
SCALARS = {
    "String": '"x"',
    "ID": '"x"',
    "Int": "1",
    "Float": "1.5",
    "Boolean": "true",
    "Decimal": '"1"',
    "Date": '"2026-01-01"',
    "DateTime": '"2026-01-01T00:00:00Z"',
    "JSON": "{}",
}


def literal(kind: GraphQLInputType) -> str:
    """A value of the type that passes validation: the request reaches the resolver."""
    if isinstance(kind, GraphQLNonNull):
        return literal(kind.of_type)
    if isinstance(kind, GraphQLList):
        return f"[{literal(kind.of_type)}]"
    if isinstance(kind, GraphQLEnumType):
        return next(iter(kind.values))
    if isinstance(kind, GraphQLInputObjectType):
        fields = ", ".join(
            f"{name}: {literal(field.type)}"
            for name, field in kind.fields.items()
            if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
        )
        return f"{{{fields}}}"
    assert isinstance(kind, GraphQLScalarType)
    return SCALARS[kind.name]


def operation(kind: str, name: str, field: GraphQLField) -> str:
    arguments = ", ".join(
        f"{arg}: {REAL.get(arg) or literal(a.type)}"
        for arg, a in field.args.items()
        if isinstance(a.type, GraphQLNonNull) and a.default_value is Undefined
    )
    call = f"{name}({arguments})" if arguments else name
    selection = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
    return f"{kind} {{ {call}{selection} }}"


def needed(schema: GraphQLSchema, kind: str, name: str, declared: dict[str, str]) -> str | None:
    """The role a field needs: declared, or that of its kind for an entity's field."""
    key = f"{kind}.{name}"
    if key in declared:
        return declared[key]
    entity_types = _entity_types(schema)
    field_type = get_named_type(
        (schema.query_type if kind == "Query" else schema.mutation_type).fields[name].type  # type: ignore[union-attr]
    )
    if kind == "Query" and (
        field_type.name in entity_types
        or field_type.name.removesuffix("Connection") in entity_types
    ):
        return "reader"
    if kind == "Mutation":
        for verb in ("create", "update", "delete"):
            if name.startswith(verb) and name.removeprefix(verb) in entity_types:
                return "writer"
    return None


def _entity_types(schema: GraphQLSchema) -> set[str]:
    """Object types of entities: those with a connection type of their own."""
    return {
        name.removesuffix("Connection")
        for name, t in schema.type_map.items()
        if name.endswith("Connection") and isinstance(t, GraphQLObjectType)
    }


def test_every_field_against_every_role(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane()
    schema = gw.runtime.schemas.current._schema  # type: ignore[union-attr]
    declared: dict[str, str] = json.loads(TABLE.read_text())
    tokens = {
        "anonymous": ANONYMOUS,
        "reader": gw.token(Role.READER, sub="reader@contoso.com"),
        "writer": gw.token(Role.WRITER, sub="writer@contoso.com"),
        "admin": gw.token(Role.ADMIN, sub=ADMINISTRATOR),  # the environment's administrator
    }
    fields = [
        (kind, name, field)
        for kind, root in (("Query", schema.query_type), ("Mutation", schema.mutation_type))
        for name, field in root.fields.items()
        if not name.startswith("__")
    ]
    unknown = [f"{k}.{n}" for k, n, _ in fields if needed(schema, k, n, declared) is None]
    assert not unknown, f"declare the role these fields need in {TABLE.name}: {unknown}"
    stale = set(declared) - {f"{k}.{n}" for k, n, _ in fields}
    assert not stale, f"{TABLE.name} names fields the schema no longer has: {stale}"

    wrong: list[str] = []
    # the roles that must be refused go first: what an allowed call changes cannot mask them
    for role in ORDER:
        for kind, name, field in fields:
            role_needed = needed(schema, kind, name, declared)
            assert role_needed is not None
            allowed = ORDER.index(role) >= ORDER.index(role_needed)
            body = gw.query(operation(kind.lower(), name, field), token=tokens[role])
            codes = {e.get("extensions", {}).get("code") for e in body.get("errors", [])}
            assert not codes & {"GRAPHQL_VALIDATION_FAILED", "INTERNAL_SERVER_ERROR"}, (
                kind,
                name,
                body,
            )
            if allowed == bool(codes & DENIED):
                wrong.append(f"{kind}.{name} as {role}: {'refused' if allowed else 'allowed'}")
    assert not wrong, "\n".join(wrong)
    assert len(fields) > 50  # the matrix covered the schema
