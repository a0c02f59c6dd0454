"""Lean resolvers for the generated row types.

Strawberry wraps every field resolver (an `Info` object, argument conversion, the
extension chain) so that hand-written resolvers get typed Python arguments. Generated
row fields need none of that: a scalar is a dict lookup, a relation is a lookup of
what the root field's plan already fetched. On lists of thousands of rows that wrapper
is most of the cost, so after a build the generated types' fields get plain
graphql-core resolvers. Root fields and hand-written types keep Strawberry's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema

from gateway.kernel.cursor import encode_cursor
from gateway.kernel.plan import ETAG_SLOT, Connection, child_slot
from schema.naming import ETAG_FIELD
from schema.planner import EntityBinding

Resolver = Callable[..., Any]
Info = GraphQLResolveInfo[Any]


def install(schema: GraphQLSchema, bindings: Mapping[str, EntityBinding], names: Any) -> None:
    for binding in bindings.values():
        entity = binding.entity
        _replace(schema, binding.object_type, _row_resolvers(binding))
        _replace(schema, names.connection_type(entity), CONNECTION)
        _replace(schema, names.edge_type(entity), EDGE)
    if bindings:  # with no entity visible yet there are no connections
        _replace(schema, "PageInfo", PAGE_INFO)


def _replace(schema: GraphQLSchema, type_name: str, resolvers: Mapping[str, Resolver]) -> None:
    graphql_type = schema.type_map[type_name]
    assert isinstance(graphql_type, GraphQLObjectType)
    for name, resolver in resolvers.items():
        graphql_type.fields[name].resolve = resolver


def _row_resolvers(binding: EntityBinding) -> dict[str, Resolver]:
    resolvers: dict[str, Resolver] = {
        name: _column(field.name) for name, field in binding.fields.items()
    }
    for name in binding.relations:
        resolvers[name] = _relation
    if binding.entity.etag and ETAG_FIELD not in binding.fields:
        resolvers[ETAG_FIELD] = _etag
    return resolvers


def _column(key: str) -> Resolver:
    def resolve(row: dict[str, Any], _info: Info) -> Any:
        return row[key]

    return resolve


def _etag(row: dict[str, Any], _info: Info) -> Any:
    return row.get(ETAG_SLOT)


def _relation(row: dict[str, Any], info: Info, **_: Any) -> Any:
    return row[child_slot(str(info.path.key))]


def _start_cursor(page: Connection, _info: Info) -> str | None:
    return encode_cursor(page.order, page.rows[0]) if page.rows else None


def _end_cursor(page: Connection, _info: Info) -> str | None:
    return encode_cursor(page.order, page.rows[-1]) if page.rows else None


CONNECTION: dict[str, Resolver] = {
    "nodes": lambda page, _info: page.rows,
    "edges": lambda page, _info: [(page, row) for row in page.rows],
    "pageInfo": lambda page, _info: page,
    "totalCount": lambda page, _info: page.total or 0,
}
EDGE: dict[str, Resolver] = {
    "cursor": lambda edge, _info: encode_cursor(edge[0].order, edge[1]),
    "node": lambda edge, _info: edge[1],
}
PAGE_INFO: dict[str, Resolver] = {
    "hasNextPage": lambda page, _info: page.has_next,
    "hasPreviousPage": lambda page, _info: page.has_previous,
    "startCursor": _start_cursor,
    "endCursor": _end_cursor,
}
