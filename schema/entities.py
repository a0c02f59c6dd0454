"""Generate the GraphQL types and root fields of the visible entities.

Per entity: an object type, a connection and edge type, a filter input, an order
input with its field enum, and two root fields (connection and by-key). Types are
built with `create_type`; references between them go through the build's registry,
so entities may refer to each other in cycles. The generated types' fields are
resolved by `schema.lean`; only the root fields resolve here.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Mapping
from typing import Any, cast

import strawberry
from graphql import get_argument_values
from graphql.execution.values import VariableValues
from strawberry.tools import create_type
from strawberry.types.field import StrawberryField

from gateway.auth import Role
from gateway.kernel.catalog import Cardinality, EntityMetadata, EnumType, FieldType, ResolvedCatalog
from gateway.kernel.errors import BadUserInput
from gateway.kernel.plan import Connection, child_slot
from schema.context import RequestContext
from schema.filters import OPERATOR_INPUTS, NullsOrder, OrderDirection, enum_operators
from schema.naming import ETAG_FIELD, Inflector
from schema.planner import FNO, EntityBinding, Planner
from schema.registry import TypeRegistry
from schema.scalars import SCALARS


@strawberry.type(description="Relay page information.")
class PageInfo:
    has_next_page: bool = strawberry.field(name="hasNextPage")
    has_previous_page: bool = strawberry.field(name="hasPreviousPage")
    start_cursor: str | None = strawberry.field(name="startCursor")
    end_cursor: str | None = strawberry.field(name="endCursor")


class EntityTypes:
    """Builds every entity's types into one registry, then the root query fields."""

    def __init__(
        self,
        catalog: ResolvedCatalog,
        registry: TypeRegistry,
        inflector: Inflector,
        sources: Mapping[str, str] | None = None,
    ) -> None:
        self.catalog = catalog
        self.sources = sources or {}  # entity name → store, where it is not the F&O store
        self.registry = registry
        self.names = inflector
        self.bindings: dict[str, EntityBinding] = {}
        self._enums: dict[str, Any] = {}

    def build(self) -> list[StrawberryField]:
        for entity in self.catalog.entities.values():
            self.bindings[entity.name] = EntityBinding(
                entity=entity,
                object_type=self.names.object_type(entity),
                connection_type=self.names.connection_type(entity),
                edge_type=self.names.edge_type(entity),
                fields={self.names.field(f): f for f in entity.fields},
                relations={self.names.relation(r): r for r in entity.relations},
                source=self.sources.get(entity.name, FNO),
            )
        root_fields: list[StrawberryField] = []
        for entity in self.catalog.entities.values():
            self._object_type(entity)
            self._connection_types(entity)
            self._filter_types(entity)
            self._order_types(entity)
            root_fields.append(self._connection_field(entity))
            root_fields.append(self._by_key_field(entity))
        return root_fields

    def scalar(self, entity: EntityMetadata, field_name: str) -> Any:
        field = entity.field(field_name)
        if field.type is FieldType.ENUM:
            assert field.enum is not None
            return self._enum(field.enum)
        return SCALARS[field.type]

    def _enum(self, kind: EnumType) -> Any:
        name = self.names.enum_type(kind)
        if name not in self._enums:
            python_enum: Any = enum.Enum(name, {m.symbol: m.value for m in kind.members})  # type: ignore[misc]
            self._enums[name] = self.registry.add(
                name,
                strawberry.enum(python_enum, description=f"F&O enum {kind.name}."),
                f"enum {kind.name}",
            )
            filter_name = self.names.enum_filter_type(kind)
            self.registry.add(
                filter_name,
                enum_operators(filter_name, self.registry.ref(name)),
                f"enum {kind.name}",
            )
        return self._enums[name]

    def _object_type(self, entity: EntityMetadata) -> None:
        fields: list[StrawberryField] = []
        for field in entity.fields:
            kind = self.scalar(entity, field.name)
            f = make_field(
                name=self.names.field(field),
                graphql_type=kind if not field.nullable else kind | None,
                description=field.label or None,
            )
            f.python_name = field.name
            fields.append(f)
        if entity.etag and ETAG_FIELD not in {f.name for f in fields}:
            f = make_field(
                name=ETAG_FIELD,
                graphql_type=str | None,
                description="The row's version as its store tags it: pass it as ifMatch to "
                "change or delete this version only.",
            )
            f.python_name = ETAG_FIELD
            fields.append(f)
        for relation in entity.relations:
            target = self.catalog.entity(relation.target)
            if relation.cardinality is Cardinality.MANY:
                f = make_field(
                    name=self.names.relation(relation),
                    graphql_type=self.registry.ref(self.names.connection_type(target)),
                    resolver=with_arguments(_child, self._list_arguments(target)),
                    description=relation.label or None,
                )
            else:
                f = make_field(
                    name=self.names.relation(relation),
                    graphql_type=self.registry.ref(self.names.object_type(target)) | None,
                    resolver=with_arguments(_child, []),
                    description=relation.label or None,
                )
            f.python_name = f"rel_{relation.name}"
            fields.append(f)
        name = self.names.object_type(entity)
        self.registry.add(
            name, create_type(name, fields, description=entity.label), f"entity {entity.name}"
        )

    def _connection_types(self, entity: EntityMetadata) -> None:
        node = self.registry.ref(self.names.object_type(entity))
        edge_name = self.names.edge_type(entity)
        edge = create_type(
            edge_name,
            [
                make_field(name="cursor", graphql_type=str),
                make_field(name="node", graphql_type=node),
            ],
        )
        self.registry.add(edge_name, edge, f"entity {entity.name}")
        name = self.names.connection_type(entity)
        connection = create_type(
            name,
            [
                make_field(name="edges", graphql_type=list_of(self.registry.ref(edge_name))),
                make_field(name="nodes", graphql_type=list_of(node)),
                make_field(name="pageInfo", graphql_type=PageInfo),
                make_field(name="totalCount", graphql_type=int),
            ],
            description=f"A page of {entity.label or entity.collection_name}.",
        )
        self.registry.add(name, connection, f"entity {entity.name}")

    def _filter_types(self, entity: EntityMetadata) -> None:
        name = self.names.filter_type(entity)
        me = self.registry.ref(name)
        fields: list[StrawberryField] = []
        for field in entity.fields:
            if field.type is FieldType.ENUM:
                assert field.enum is not None
                self._enum(field.enum)
                operators = self.registry.ref(self.names.enum_filter_type(field.enum))
            else:
                operators = OPERATOR_INPUTS[field.type]
            fields.append(input_field(self.names.field(field), operators | None, f"f_{field.name}"))
        for relation in entity.relations:
            target = self.catalog.entity(relation.target)
            if relation.cardinality is Cardinality.MANY:
                kind = self.registry.ref(self.names.many_filter_type(target))
            else:
                kind = self.registry.ref(self.names.filter_type(target))
            fields.append(
                input_field(self.names.relation(relation), kind | None, f"r_{relation.name}")
            )
        fields.append(input_field("and", list[me] | None, "and_"))  # type: ignore[valid-type]
        fields.append(input_field("or", list[me] | None, "or_"))  # type: ignore[valid-type]
        fields.append(input_field("not", me | None, "not_"))
        self.registry.add(name, create_type(name, fields, is_input=True), f"entity {entity.name}")
        many = self.names.many_filter_type(entity)
        self.registry.add(
            many,
            create_type(
                many,
                [
                    input_field("some", me | None, "some"),
                    input_field("every", me | None, "every"),
                    input_field("none", me | None, "none_"),
                ],
                is_input=True,
                description=f"Conditions on related {entity.collection_name}.",
            ),
            f"entity {entity.name}",
        )

    def _order_types(self, entity: EntityMetadata) -> None:
        enum_name = self.names.order_field_enum(entity)
        members = {self.names.order_value(f): f.name for f in entity.fields}
        order_enum = strawberry.enum(cast(Any, enum.Enum(enum_name, members)))
        self.registry.add(enum_name, order_enum, f"entity {entity.name}")
        name = self.names.order_type(entity)
        fields = [
            input_field("field", order_enum, "field"),
            input_field("direction", OrderDirection | None, "direction"),
            input_field("nulls", NullsOrder | None, "nulls"),
        ]
        self.registry.add(name, create_type(name, fields, is_input=True), f"entity {entity.name}")

    def _list_arguments(self, entity: EntityMetadata) -> list[tuple[str, Any]]:
        return [
            ("where", self.registry.ref(self.names.filter_type(entity)) | None),
            ("orderBy", list[self.registry.ref(self.names.order_type(entity))] | None),  # type: ignore[misc]
            ("first", int | None),
            ("after", str | None),
            ("last", int | None),
            ("before", str | None),
        ]

    def _connection_field(self, entity: EntityMetadata) -> StrawberryField:
        arguments = self._list_arguments(entity)
        if entity.company_scoped:
            arguments += [("company", str | None), ("crossCompany", bool | None)]

        async def resolve(info: strawberry.Info, **_: Any) -> Connection:
            context: RequestContext = info.context
            context.require(Role.READER)
            raw = info._raw_info
            planner = self._planner(info)
            args = planner_arguments(raw)
            company = company_argument(entity, args)
            if entity.company_scoped:
                context.principal.check_company(company)
            plan = planner.connection(entity, list(raw.field_nodes), args, company)
            context.charge(plan)
            page = await context.in_time(
                context.source(self.bindings[entity.name].source).fetch(plan)
            )
            if company is not None and not page.rows:
                await _check_company(context, company)
            return page

        description = f"{entity.label} ({entity.name}), read through from the F&O store."
        if entity.company_scoped:
            description += " Company-specific: pass company, or crossCompany: true."
        field = make_field(
            name=self.names.connection_field(entity),
            graphql_type=self.registry.ref(self.names.connection_type(entity)),
            resolver=with_arguments(resolve, arguments),
            description=description,
        )
        field.python_name = self.names.connection_field(entity)
        return field

    def _by_key_field(self, entity: EntityMetadata) -> StrawberryField:
        key_fields = entity.key
        arguments = [(self.names.field(f), self.scalar(entity, f.name)) for f in key_fields]

        async def resolve(info: strawberry.Info, **_: Any) -> Any:
            context: RequestContext = info.context
            context.require(Role.READER)
            raw = info._raw_info
            args = planner_arguments(raw)
            for company in companies_asked(self.bindings[entity.name], args, by_key=True):
                context.principal.check_company(company)
            plan = self._planner(info).by_key(entity, list(raw.field_nodes), args)
            context.charge(plan)
            page = await context.in_time(
                context.source(self.bindings[entity.name].source).fetch(plan)
            )
            return page.rows[0] if page.rows else None

        field = make_field(
            name=self.names.by_key_field(entity),
            graphql_type=self.registry.ref(self.names.object_type(entity)) | None,
            resolver=with_arguments(resolve, arguments),
            description=f"One {entity.name} by its key, or null.",
        )
        field.python_name = self.names.by_key_field(entity)
        return field

    def _planner(self, info: strawberry.Info) -> Planner:
        raw = info._raw_info
        context: RequestContext = info.context
        return Planner(
            self.bindings, context.limits, raw.schema, raw.fragments, variable_values(raw)
        )


def planner_arguments(raw: Any) -> dict[str, Any]:
    definition = raw.parent_type.fields[raw.field_name]
    return get_argument_values(definition, raw.field_nodes[0], variable_values(raw))


def variable_values(raw: Any) -> VariableValues:
    """The operation's coerced variables in the form graphql-core's helpers take."""
    values = raw.variable_values
    return values if isinstance(values, VariableValues) else VariableValues({}, dict(values))


def company_argument(entity: EntityMetadata, args: dict[str, Any]) -> str | None:
    company, cross = args.get("company"), bool(args.get("crossCompany"))
    if not entity.company_scoped:
        return None
    if company is not None and cross:
        raise BadUserInput("pass company or crossCompany: true, not both")
    if company is None and not cross:
        raise BadUserInput(
            f"{entity.collection_name} is company-specific: pass company (a legal entity such "
            'as "USMF") or crossCompany: true to read every company'
        )
    return None if cross else str(company).lower()


def companies_asked(
    binding: EntityBinding, args: dict[str, Any], by_key: bool
) -> tuple[str | None, ...]:
    """The legal entities a root read asks for: none for a cross-company entity, (None,)
    for every company."""
    entity = binding.entity
    if not entity.company_scoped:
        return ()
    if not by_key:
        return (company_argument(entity, args),)
    name = next(n for n, f in binding.fields.items() if f.name == entity.company_field)
    return (str(args[name]).lower(),)


async def _check_company(context: RequestContext, company: str) -> None:
    known = await context.fno.companies()
    if company not in known:
        names = ", ".join(k.upper() for k in known)
        raise BadUserInput(f"unknown legal entity {company.upper()!r}; known: {names}")


def list_of(item: Any) -> Any:
    """`list[item]` for an item type known only at run time."""
    return list[item]


def make_field(**options: Any) -> StrawberryField:
    """`strawberry.field`, typed for fields made at run time."""
    made: StrawberryField = cast(Any, strawberry.field)(**options)
    return made


def input_field(name: str, kind: Any, python_name: str) -> StrawberryField:
    f = make_field(name=name, graphql_type=kind, default=strawberry.UNSET)
    f.python_name = python_name
    return f


def with_arguments(
    function: Callable[..., Any], arguments: list[tuple[str, Any]]
) -> Callable[..., Any]:
    """Give a generic resolver the GraphQL arguments of one field, as a signature."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    parameters = [
        inspect.Parameter(
            "info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=strawberry.Info
        )
    ]
    if function is _child:
        parameters.insert(
            0,
            inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_PARENT),
        )
    for name, annotation in arguments:
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation,
                default=strawberry.UNSET,
            )
        )
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    wrapper.__name__ = function.__name__
    if inspect.iscoroutinefunction(function):

        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            return await function(*args, **kwargs)

        awrapper.__signature__ = wrapper.__signature__  # type: ignore[attr-defined]
        awrapper.__annotations__ = wrapper.__annotations__
        awrapper.__name__ = function.__name__
        return awrapper
    return wrapper


_PARENT: Any = strawberry.Parent[Any]  # type: ignore[misc]


def _child(root: Any, info: strawberry.Info, **_: Any) -> Any:
    """A relation's rows, fetched by the root field's plan under this response key.

    This declares the relation's arguments; `schema.lean` serves it at run time.
    """
    return root[child_slot(str(info.path.key))]
