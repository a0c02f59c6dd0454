"""From a GraphQL selection to a `QueryPlan`, once per root field.

The whole subtree under a root field is read here, before anything runs, so the
datasource can fetch each level in one statement. Fields are collected as GraphQL
execution collects them (fragments, `@skip`/`@include`, merging by response key).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
    get_argument_values,
)
from graphql.execution.values import get_directive_values

from gateway.kernel.catalog import Cardinality, EntityField, EntityMetadata, Relation
from gateway.kernel.cursor import decode_cursor
from gateway.kernel.errors import BadUserInput, LimitExceeded
from gateway.kernel.plan import (
    ETAG_SLOT,
    And,
    ChildPlan,
    Compare,
    Filter,
    Not,
    Op,
    Or,
    OrderTerm,
    PageRequest,
    Quantifier,
    QueryPlan,
    RelationFilter,
    with_key_order,
)
from gateway.kernel.shape import (
    Column,
    ConnectionShape,
    Cursor,
    Edges,
    Nested,
    Nodes,
    PageInfoShape,
    RowShape,
    TotalCount,
    Typename,
)
from schema.context import ReadLimits
from schema.naming import ETAG_FIELD

PAGE_INFO = Typename("PageInfo")
FNO = "fno"
DATAVERSE = "dataverse"


@dataclass(frozen=True)
class EntityBinding:
    """How one entity appears in this schema build: its GraphQL names."""

    entity: EntityMetadata
    object_type: str
    connection_type: str
    edge_type: str
    fields: Mapping[str, EntityField]  # by GraphQL name
    relations: Mapping[str, Relation]  # by GraphQL name
    source: str = FNO  # the store it is read from and written to


@dataclass
class Planner:
    bindings: Mapping[str, EntityBinding]  # by entity name
    limits: ReadLimits
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Any

    def connection(
        self,
        entity: EntityMetadata,
        nodes: list[FieldNode],
        args: Mapping[str, Any],
        company: str | None = None,
    ) -> QueryPlan:
        binding = self.bindings[entity.name]
        order = self._order(binding, args.get("orderBy"))
        page = self._page(entity, order, args)
        total = False
        row_nodes: list[FieldNode] = []
        for found in self._collect(nodes).values():
            name = found[0].name.value
            if name == "totalCount":
                total = True
            elif name == "nodes":
                row_nodes.extend(found)
            elif name == "edges":
                for edge_nodes in self._collect(found).values():
                    if edge_nodes[0].name.value == "node":
                        row_nodes.extend(edge_nodes)
        columns, children = self._rows(binding, row_nodes)
        return QueryPlan(
            entity=entity,
            columns=columns,
            order=order,
            where=self.where(binding, args.get("where")),
            page=page,
            company=company,
            total=total,
            children=children,
        )

    def by_key(
        self, entity: EntityMetadata, nodes: list[FieldNode], args: Mapping[str, Any]
    ) -> QueryPlan:
        """A by-key read: every key field equal to its argument (the company in any case)."""
        binding = self.bindings[entity.name]
        compares: list[Filter] = []
        for name, field in binding.fields.items():
            if not field.is_key:
                continue
            value = _enum_value(args[name])
            if field.name == entity.company_field:
                value = str(value).lower()
            compares.append(Compare(field.name, Op.EQ, value))
        return self.object(entity, nodes, And(tuple(compares)))

    def object(
        self, entity: EntityMetadata, nodes: list[FieldNode], where: Filter | None
    ) -> QueryPlan:
        binding = self.bindings[entity.name]
        columns, children = self._rows(binding, nodes)
        return QueryPlan(
            entity=entity,
            columns=columns,
            order=with_key_order(entity, ()),
            where=where,
            children=children,
        )

    def _rows(
        self, binding: EntityBinding, nodes: list[FieldNode]
    ) -> tuple[tuple[str, ...], tuple[ChildPlan, ...]]:
        columns: dict[str, None] = {}
        children: list[ChildPlan] = []
        parent_type = self.schema.type_map[binding.object_type]
        assert isinstance(parent_type, GraphQLObjectType)
        for key, found in self._collect(nodes).items():
            # `nodes` and `edges { node }` may each put a different field under one key
            by_name: dict[str, list[FieldNode]] = defaultdict(list)
            for node in found:
                by_name[node.name.value].append(node)
            relations = [name for name in by_name if name in binding.relations]
            if len(relations) > 1 or (relations and len(by_name) > 1):
                raise BadUserInput(
                    f"{key} names different fields under nodes and edges; give each an alias"
                )
            for name, same in by_name.items():
                field = binding.fields.get(name)
                if field is not None:
                    columns[field.name] = None
                elif name in binding.relations:
                    children.append(self._child(binding, parent_type, key, name, same))
        return tuple(columns), tuple(children)

    def _child(
        self,
        binding: EntityBinding,
        parent_type: GraphQLObjectType,
        key: str,
        name: str,
        nodes: list[FieldNode],
    ) -> ChildPlan:
        relation = binding.relations[name]
        args = self._arguments(parent_type, name, nodes)
        target = self.bindings[relation.target].entity
        if relation.cardinality is Cardinality.MANY:
            return ChildPlan(key, relation, self.connection(target, nodes, args))
        return ChildPlan(key, relation, self.object(target, nodes, None))

    def connection_shape(self, entity: EntityMetadata, nodes: list[FieldNode]) -> ConnectionShape:
        """How a connection's answer is laid out, key by key, as the client selected it."""
        binding = self.bindings[entity.name]
        entries: list[tuple[str, Any]] = []
        for key, found in self._collect(nodes).items():
            name = found[0].name.value
            if name == "totalCount":
                entries.append((key, TotalCount()))
            elif name == "nodes":
                entries.append((key, Nodes(self.row_shape(entity, found))))
            elif name == "edges":
                entries.append((key, self._edges_shape(binding, found)))
            elif name == "pageInfo":
                info = [
                    (
                        k,
                        Typename("PageInfo")
                        if f[0].name.value == "__typename"
                        else f[0].name.value,
                    )
                    for k, f in self._collect(found).items()
                ]
                entries.append((key, PageInfoShape(tuple(info))))
            else:
                entries.append((key, Typename(binding.connection_type)))
        return ConnectionShape(tuple(entries))

    def _edges_shape(self, binding: EntityBinding, nodes: list[FieldNode]) -> Edges:
        entries: list[tuple[str, Cursor | Nodes | Typename]] = []
        for key, found in self._collect(nodes).items():
            name = found[0].name.value
            if name == "cursor":
                entries.append((key, Cursor()))
            elif name == "node":
                entries.append((key, Nodes(self.row_shape(binding.entity, found))))
            else:
                entries.append((key, Typename(binding.edge_type)))
        return Edges(tuple(entries))

    def row_shape(self, entity: EntityMetadata, nodes: list[FieldNode]) -> RowShape:
        binding = self.bindings[entity.name]
        entries: list[tuple[str, Column | Nested | Typename]] = []
        for key, found in self._collect(nodes).items():
            name = found[0].name.value
            if name in binding.fields:
                entries.append((key, Column(binding.fields[name].name)))
            elif name == ETAG_FIELD and entity.etag:
                entries.append((key, Column(ETAG_SLOT)))
            elif name in binding.relations:
                relation = binding.relations[name]
                target = self.bindings[relation.target].entity
                shape: RowShape | ConnectionShape
                if relation.cardinality is Cardinality.MANY:
                    shape = self.connection_shape(target, found)
                else:
                    shape = self.row_shape(target, found)
                entries.append((key, Nested(key, shape)))
            else:
                entries.append((key, Typename(binding.object_type)))
        return RowShape(tuple(entries))

    def _arguments(
        self, parent: GraphQLObjectType, name: str, nodes: list[FieldNode]
    ) -> dict[str, Any]:
        definition = parent.fields[name]
        args = get_argument_values(definition, nodes[0], self.variables)
        for other in nodes[1:]:
            if get_argument_values(definition, other, self.variables) != args:
                raise BadUserInput(
                    f"{name} is selected twice under one response key with different "
                    "arguments (once under nodes, once under edges); give each an alias"
                )
        return args

    def collect_root(self, selection_set: SelectionSetNode) -> dict[str, list[FieldNode]]:
        """The operation's root fields by response key, as execution would collect them."""
        return self._collect((), selection_set)

    def _collect(
        self, nodes: Iterable[FieldNode], root: SelectionSetNode | None = None
    ) -> dict[str, list[FieldNode]]:
        collected: dict[str, list[FieldNode]] = defaultdict(list)
        seen: set[str] = set()

        def visit(selection_set: SelectionSetNode | None) -> None:
            if selection_set is None:
                return
            for selection in selection_set.selections:
                if not self._included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    collected[key].append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    visit(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    if name not in seen and name in self.fragments:
                        seen.add(name)
                        visit(self.fragments[name].selection_set)

        visit(root)
        for node in nodes:
            visit(node.selection_set)
        return collected

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include.get("if") is False)

    def _order(
        self, binding: EntityBinding, order_by: list[dict[str, Any]] | None
    ) -> tuple[OrderTerm, ...]:
        terms = []
        for item in order_by or ():
            field = _enum_value(item["field"])
            descending = _enum_value(item.get("direction") or "asc") == "desc"
            nulls = item.get("nulls")
            nulls_first = descending if nulls is None else _enum_value(nulls) == "first"
            terms.append(OrderTerm(field, descending, nulls_first))
        return with_key_order(binding.entity, terms)

    def _page(
        self, entity: EntityMetadata, order: tuple[OrderTerm, ...], args: Mapping[str, Any]
    ) -> PageRequest:
        first, last = args.get("first"), args.get("last")
        if first is not None and last is not None:
            raise BadUserInput("pass first or last, not both")
        maximum = self.limits.max_page_size
        for name, value in (("first", first), ("last", last)):
            if value is not None and value < 0:
                raise BadUserInput(f"{name} must be zero or more, not {value}")
            if value is not None and value > maximum:
                raise LimitExceeded(
                    f"{name}: {value} exceeds the maximum page size {maximum} "
                    "(GATEWAY_MAX_PAGE_SIZE); page through with after/before",
                    limit="GATEWAY_MAX_PAGE_SIZE",
                )
        if first is None and last is None:
            if args.get("before") is not None:
                last = self.limits.default_page_size
            else:
                first = self.limits.default_page_size
        after = args.get("after")
        before = args.get("before")
        return PageRequest(
            first=first,
            after=None if after is None else decode_cursor(after, entity, order),
            last=last,
            before=None if before is None else decode_cursor(before, entity, order),
        )

    def where(self, binding: EntityBinding, where: Mapping[str, Any] | None) -> Filter | None:
        if not where:
            return None
        items: list[Filter] = []
        for name, value in where.items():
            if value is None:
                continue
            if name == "and":
                items.append(And(tuple(f for f in (self.where(binding, w) for w in value) if f)))
            elif name == "or":
                items.append(Or(tuple(f for f in (self.where(binding, w) for w in value) if f)))
            elif name == "not":
                inner = self.where(binding, value)
                if inner is not None:
                    items.append(Not(inner))
            elif name in binding.fields:
                items.extend(self._compare(binding.fields[name], value))
            else:
                items.append(self._relation_filter(binding, binding.relations[name], value))
        if not items:
            return None
        return items[0] if len(items) == 1 else And(tuple(items))

    def _compare(self, field: EntityField, operators: Mapping[str, Any]) -> list[Filter]:
        compares: list[Filter] = []
        for name, value in operators.items():
            op = Op(name)
            if value is None:
                raise BadUserInput(
                    f"{op.value} on {field.name} needs a value; "
                    "to match empty fields use isNull: true"
                )
            if op in (Op.IN, Op.NIN):
                value = tuple(_enum_value(v) for v in value)
            else:
                value = _enum_value(value)
            compares.append(Compare(field.name, op, value))
        return compares

    def _relation_filter(
        self, binding: EntityBinding, relation: Relation, value: Mapping[str, Any]
    ) -> Filter:
        target = self.bindings[relation.target]
        if relation.cardinality is Cardinality.ONE:
            inner = self.where(target, value)
            return RelationFilter(relation, target.entity, Quantifier.SOME, inner or And(()))
        parts: list[Filter] = []
        for quantifier in Quantifier:
            if value.get(quantifier.value) is not None:
                inner = self.where(target, value[quantifier.value]) or And(())
                parts.append(RelationFilter(relation, target.entity, quantifier, inner))
        if not parts:
            raise BadUserInput(f"filter on {relation.name} needs some, every or none")
        return parts[0] if len(parts) == 1 else And(tuple(parts))


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
