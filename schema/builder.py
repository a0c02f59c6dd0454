"""`build_schema`: a pure function from a resolved catalog to a Strawberry schema."""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import create_type
from strawberry.types import ExecutionContext

from gateway.kernel.catalog import ResolvedCatalog
from gateway.kernel.errors import GatewayError
from schema.catalog_api import CATALOG_QUERY_FIELDS, Mutation
from schema.entities import EntityTypes
from schema.naming import Inflector
from schema.registry import TypeRegistry
from schema.scalars import SCALAR_MAP

log = logging.getLogger("gateway.errors")


class GatewaySchema(strawberry.Schema):
    """A Strawberry schema that logs only what the client cannot be told."""

    catalog_version: str = ""

    def process_errors(
        self, errors: Sequence[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, GatewayError):
                log.error("internal error in %s", error.path, exc_info=original)


def build_schema(
    catalog: ResolvedCatalog, max_depth: int = 12, max_aliases: int = 50, max_tokens: int = 10_000
) -> GatewaySchema:
    registry = TypeRegistry()
    root_fields = EntityTypes(catalog, registry, Inflector()).build()
    query: Any = create_type("Query", [*CATALOG_QUERY_FIELDS, *root_fields])
    schema = GatewaySchema(
        query=query,
        mutation=Mutation,
        config=StrawberryConfig(
            auto_camel_case=False, default_resolver=operator.getitem, scalar_map=SCALAR_MAP
        ),
        extensions=[
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxAliasesLimiter(max_alias_count=max_aliases),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            ParserCache,
            ValidationCache,
        ],
    )
    schema.catalog_version = catalog.version
    return schema
