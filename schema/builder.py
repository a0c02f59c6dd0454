"""`build_schema`: a pure function from a resolved catalog to a Strawberry schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLObjectType
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.tools import create_type
from strawberry.types import ExecutionContext

from gateway.kernel.catalog import ResolvedCatalog
from schema import (
    catalog_api,
    dualwrite_api,
    event_endpoints_api,
    events_api,
    lean,
    setup_api,
    tenant_api,
)
from schema.entities import EntityTypes
from schema.fast import FastReads, RootField
from schema.fast_stream import FastStreams
from schema.mutations import EntityMutations
from schema.naming import Inflector
from schema.planner import DATAVERSE
from schema.registry import TypeRegistry
from schema.scalars import SCALAR_MAP

MEMO_LIMIT = 64  # subfield sets an executor remembers (a subscription has one each)


class GatewaySchema(strawberry.Schema):
    """A Strawberry schema that leaves error logging to the transport.

    The transport masks internal errors and logs each once, under the id the client
    is given; errors meant for the client are not logged at all.
    """

    catalog_version: str = ""
    fast: FastReads | None = None
    fast_streams: FastStreams | None = None

    async def stream(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Subscriptions the fast path serves go there (see `fast_stream`)."""
        if self.fast_streams is not None:
            started = self.fast_streams.start(query, variable_values, operation_name, context_value)
            if started is not None:
                return started
        return await super().stream(
            query, variable_values, context_value, root_value, operation_name, **options
        )

    def process_errors(
        self, errors: Sequence[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


class GatewayExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core memoizes each executor's subfields by the identity of lists that
    every execution makes anew; a subscription keeps one executor for its whole life,
    so that memo grew with every message sent (and slowed the collector with it).
    Bounded here: emptying it only costs a recomputation, never a wrong hit, as each
    entry keeps its own list alive."""

    def collect_subfields(self, return_type: GraphQLObjectType, field_details_list: Any) -> Any:
        if len(self._relevant_sub_fields) > MEMO_LIMIT:
            self._relevant_sub_fields.clear()
        return super().collect_subfields(return_type, field_details_list)


def read_field(source: Any, name: str) -> Any:
    """Rows are dicts keyed by F&O field name; everything else is an object."""
    return source[name] if type(source) is dict else getattr(source, name)


def build_schema(
    catalog: ResolvedCatalog,
    max_depth: int = 12,
    max_aliases: int = 50,
    max_tokens: int = 10_000,
    dataverse: ResolvedCatalog | None = None,
) -> GatewaySchema:
    """The schema of the visible F&O entities, and of the linked Dataverse store's tables."""
    sources: dict[str, str] = {}
    if dataverse is not None:
        tables = {n: t for n, t in dataverse.entities.items() if n not in catalog.entities}
        sources = dict.fromkeys(tables, DATAVERSE)
        catalog = ResolvedCatalog(
            entities={**catalog.entities, **tables},
            version=f"{catalog.version}+{dataverse.version}",
        )
    registry = TypeRegistry()
    names = Inflector()
    entity_types = EntityTypes(catalog, registry, names, sources)
    root_fields = entity_types.build()
    # Limit rules are made once per build: validation results are cached per rule set.
    limits = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    query: Any = create_type(
        "Query",
        [
            *catalog_api.QUERIES,
            *tenant_api.QUERIES,
            *setup_api.QUERIES,
            *dualwrite_api.QUERIES,
            *events_api.QUERIES,
            *event_endpoints_api.QUERIES,
            *root_fields,
        ],
    )
    entity_mutations = EntityMutations(catalog, entity_types, names).build()
    mutation: Any = create_type(
        "Mutation",
        [
            *catalog_api.MUTATIONS,
            *tenant_api.MUTATIONS,
            *setup_api.MUTATIONS,
            *event_endpoints_api.MUTATIONS,
            *dualwrite_api.MUTATIONS,
            *entity_mutations,
        ],
    )
    subscription: Any = create_type(
        "Subscription",
        [*setup_api.SUBSCRIPTIONS, *dualwrite_api.SUBSCRIPTIONS, *events_api.SUBSCRIPTIONS],
    )
    schema = GatewaySchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        execution_context_class=GatewayExecutor,
        config=StrawberryConfig(
            auto_camel_case=False, default_resolver=read_field, scalar_map=dict(SCALAR_MAP)
        ),
        extensions=[
            lambda: AddValidationRules(limits),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            ParserCache,
            ValidationCache,
        ],
    )
    schema.catalog_version = catalog.version
    lean.install(schema._schema, entity_types.bindings, names)
    roots = {}
    for entity in catalog.entities.values():
        roots[names.connection_field(entity)] = RootField(entity, by_key=False)
        roots[names.by_key_field(entity)] = RootField(entity, by_key=True)
    schema.fast_streams = FastStreams(schema._schema)
    schema.fast = FastReads(schema._schema, entity_types.bindings, roots, limits, max_tokens)
    return schema
