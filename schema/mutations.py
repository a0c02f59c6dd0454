"""Create, update and delete for every visible entity that allows them.

Per entity: `create<Entity>(input:)`, `update<Entity>(<key>, expectedVersion:,
input:)` and `delete<Entity>(<key>, expectedVersion:)`. Input fields are optional
in GraphQL; the write pipeline says which are required, so a client learns every
problem of a write at once. A created or updated row is answered by a by-key read
after the write committed: the row as the store holds it, with any selection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.tools import create_type
from strawberry.types.field import StrawberryField

from gateway.auth import Role
from gateway.kernel.catalog import EntityField, EntityMetadata, Operation, ResolvedCatalog
from gateway.kernel.change import VERSION_FIELDS, Change, ChangeKind, version_field
from gateway.kernel.dualwrite import Side
from schema.context import RequestContext
from schema.entities import EntityTypes, input_field, make_field, planner_arguments, with_arguments
from schema.naming import IF_MATCH, Inflector
from schema.planner import Planner


@strawberry.type(description="What a delete removed.")
class Deleted:
    entity: str
    key: JSON = strawberry.field(description="The deleted row's key, by field name.")
    version: int | None = strawberry.field(description="Its row version when it was deleted.")


class EntityMutations:
    def __init__(self, catalog: ResolvedCatalog, types: EntityTypes, names: Inflector) -> None:
        self.catalog = catalog
        self.types = types
        self.names = names

    def build(self) -> list[StrawberryField]:
        fields: list[StrawberryField] = []
        for entity in self.catalog.entities.values():
            if Operation.CREATE in entity.operations:
                fields.append(self._create(entity))
            if Operation.UPDATE in entity.operations:
                fields.append(self._update(entity))
            if Operation.DELETE in entity.operations:
                fields.append(self._delete(entity))
        return fields

    def _writable(self, entity: EntityMetadata, keys: bool) -> list[EntityField]:
        return [
            f
            for f in entity.fields
            if not f.read_only and f.name not in VERSION_FIELDS and (keys or not f.is_key)
        ]

    def _input(self, entity: EntityMetadata, name: str, keys: bool) -> Any:
        fields = [
            input_field(self.names.field(f), self.types.scalar(entity, f.name) | None, f.name)
            for f in self._writable(entity, keys)
        ]
        registry = self.types.registry
        registry.add(name, create_type(name, fields, is_input=True), f"entity {entity.name}")
        return registry.ref(name)

    def _key_arguments(self, entity: EntityMetadata) -> list[tuple[str, Any]]:
        return [(self.names.field(f), self.types.scalar(entity, f.name)) for f in entity.key]

    def _create(self, entity: EntityMetadata) -> StrawberryField:
        input_type = self._input(entity, self.names.create_input(entity), keys=True)

        async def resolve(info: strawberry.Info, **_: Any) -> Any:
            args = planner_arguments(info._raw_info)
            values = self._values(entity, args["input"], keys=True)
            key = {f.name: values.pop(f.name, None) for f in entity.key}
            change = self._change(info, entity, ChangeKind.CREATE, key, values, None)
            written = await self._apply(info, entity, change)
            return await self._answer(info, entity, written[1])

        return self._mutation(
            self.names.create_mutation(entity),
            self.types.registry.ref(self.names.object_type(entity)),
            resolve,
            [("input", input_type)],
            f"Create a {entity.name}; answers the row as its store holds it.",
        )

    def _update(self, entity: EntityMetadata) -> StrawberryField:
        input_type = self._input(entity, self.names.update_input(entity), keys=False)

        async def resolve(info: strawberry.Info, **_: Any) -> Any:
            args = planner_arguments(info._raw_info)
            values = self._values(entity, args["input"], keys=False)
            change = self._change(
                info, entity, ChangeKind.UPDATE, self._key(entity, args), values, args
            )
            written = await self._apply(info, entity, change)
            return await self._answer(info, entity, written[1])

        return self._mutation(
            self.names.update_mutation(entity),
            self.types.registry.ref(self.names.object_type(entity)),
            resolve,
            [*self._key_arguments(entity), *self._version_arguments(entity), ("input", input_type)],
            f"Change a {entity.name}. Pass {_version(entity)}: if the row changed since, the "
            "answer is CONFLICT and nothing is written.",
        )

    def _delete(self, entity: EntityMetadata) -> StrawberryField:
        async def resolve(info: strawberry.Info, **_: Any) -> Deleted:
            args = planner_arguments(info._raw_info)
            key = self._key(entity, args)
            change = self._change(info, entity, ChangeKind.DELETE, key, {}, args)
            before = (await self._apply(info, entity, change))[0]
            assert before is not None
            return Deleted(
                entity=entity.name,
                key=cast(JSON, {name: _plain(value) for name, value in key.items()}),
                version=before.get(version_field(entity) or ""),
            )

        return self._mutation(
            self.names.delete_mutation(entity),
            Deleted,
            resolve,
            [*self._key_arguments(entity), *self._version_arguments(entity)],
            f"Delete a {entity.name} (only if still at {_version_argument(entity)}, when given).",
        )

    def _version_arguments(self, entity: EntityMetadata) -> list[tuple[str, Any]]:
        """How a writer says which version of the row it read."""
        arguments: list[tuple[str, Any]] = [("expectedVersion", int | None)]
        return [*arguments, (IF_MATCH, str | None)] if entity.etag else arguments

    def _mutation(
        self, name: str, kind: Any, resolve: Any, arguments: list[tuple[str, Any]], about: str
    ) -> StrawberryField:
        field = make_field(
            name=name,
            graphql_type=kind,
            resolver=with_arguments(resolve, arguments),
            description=about,
        )
        field.python_name = name
        return field

    def _values(
        self, entity: EntityMetadata, given: Mapping[str, Any], keys: bool
    ) -> dict[str, Any]:
        by_name = {self.names.field(f): f for f in self._writable(entity, keys)}
        return {by_name[name].name: value for name, value in given.items() if name in by_name}

    def _key(self, entity: EntityMetadata, args: Mapping[str, Any]) -> dict[str, Any]:
        return {f.name: args[self.names.field(f)] for f in entity.key}

    def _change(
        self,
        info: strawberry.Info,
        entity: EntityMetadata,
        kind: ChangeKind,
        key: dict[str, Any],
        values: dict[str, Any],
        args: Mapping[str, Any] | None,
    ) -> Change:
        context: RequestContext = info.context
        principal = context.require(Role.WRITER)
        if entity.company_field is not None:
            company = key.get(entity.company_field)
            key[entity.company_field] = str(company).lower() if company is not None else None
            principal.check_company(key[entity.company_field])
        args = args or {}
        expected, tag = args.get("expectedVersion"), args.get(IF_MATCH)
        return Change(entity.name, kind, key, values, expected, principal.subject, if_match=tag)

    async def _apply(
        self, info: strawberry.Info, entity: EntityMetadata, change: Change
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        context: RequestContext = info.context
        side = Side(self.types.bindings[entity.name].source)
        return await context.control.writes.apply(side, entity, self.catalog.entities, change)

    async def _answer(
        self, info: strawberry.Info, entity: EntityMetadata, row: dict[str, Any] | None
    ) -> Any:
        assert row is not None
        context: RequestContext = info.context
        raw = info._raw_info
        planner = Planner(
            self.types.bindings, context.limits, raw.schema, raw.fragments, raw.variable_values
        )
        key = {self.names.field(f): row[f.name] for f in entity.key}
        store = context.source(self.types.bindings[entity.name].source)
        page = await store.fetch(planner.by_key(entity, list(raw.field_nodes), key))
        return page.rows[0] if page.rows else None


def _version(entity: EntityMetadata) -> str:
    if entity.etag:
        return f"the etag you read as {IF_MATCH}"
    return f"the row version you read ({version_field(entity) or 'none'}) as expectedVersion"


def _version_argument(entity: EntityMetadata) -> str:
    return IF_MATCH if entity.etag else "expectedVersion"


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
