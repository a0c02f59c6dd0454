"""The fast path of the `businessEvents` subscription.

At thousands of events a second to each of many listeners, running the GraphQL
executor for every message (a per-event executor, field resolution, extension hooks)
cost more than everything else the gateway does for an event. A subscription whose
selection is only `businessEvents { cursor events notice __typename }` (aliases
allowed; no fragments, no directives), from a caller who may read, is answered here:
the document is validated as any other, the arguments coerced by graphql-core, and
each message built directly in the shape the executor would give it.

Anything else (another selection, bad arguments, no credentials) takes the general
path, which reports problems as usual; so the two paths differ only in speed.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.types import ExecutionResult

from gateway.auth import Role
from gateway.events.log import EventFilter
from gateway.kernel.errors import GatewayError
from schema.context import RequestContext
from schema.events_api import BusinessEventFilter

log = logging.getLogger("gateway.subscriptions")
FIELD = "businessEvents"
SCALARS = {"cursor", "events", "notice", "__typename"}
CACHED = 256  # documents remembered


@dataclass(frozen=True)
class _Shape:
    operation: OperationDefinitionNode
    field: FieldNode
    key: str  # the field's response key
    selected: tuple[tuple[str, str], ...]  # (response key, field name)


class FastStreams:
    def __init__(self, schema: GraphQLSchema) -> None:
        self._schema = schema
        self._shapes: OrderedDict[tuple[str, str | None], _Shape | None] = OrderedDict()

    def start(
        self,
        query: str | None,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> AsyncGenerator[ExecutionResult, None] | None:
        """The stream of the subscription, if this path can serve it; None otherwise."""
        if query is None or not isinstance(context, RequestContext):
            return None
        shape = self._shape(query, operation_name)
        if shape is None:
            return None
        try:
            context.require(Role.READER)
        except GatewayError:
            return None
        coerced = get_variable_values(
            self._schema, shape.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            return None
        subscription = self._schema.subscription_type
        assert subscription is not None
        try:
            arguments = get_argument_values(subscription.fields[FIELD], shape.field, coerced)
            after = arguments.get("after")
            cursor = None if after is None else int(after)
        except (GraphQLError, ValueError):
            return None
        wanted = _filter(arguments.get("filter") or {}, context)
        return self._run(shape, context, cursor, wanted)

    async def _run(
        self, shape: _Shape, context: RequestContext, cursor: int | None, wanted: EventFilter
    ) -> AsyncGenerator[ExecutionResult, None]:
        try:
            async for delivery in context.control.stream.listen(cursor, wanted):
                values = {
                    "cursor": str(delivery.cursor),
                    "events": delivery.payloads,
                    "notice": delivery.notice,
                    "__typename": "BusinessEventBatch",
                }
                batch = {key: values[name] for key, name in shape.selected}
                yield ExecutionResult(data={shape.key: batch}, errors=None)
        except Exception as exc:  # masked for the listener, logged in full under an id
            incident = uuid.uuid4().hex[:12]
            log.error("business event stream failed (incident %s)", incident, exc_info=exc)
            message = f"internal error; the gateway log has the details under id {incident}"
            yield ExecutionResult(data=None, errors=[GraphQLError(message, path=[shape.key])])

    def _shape(self, query: str, operation_name: str | None) -> _Shape | None:
        key = (query, operation_name)
        if key in self._shapes:
            self._shapes.move_to_end(key)
            return self._shapes[key]
        shape = self._read(query, operation_name)
        self._shapes[key] = shape
        if len(self._shapes) > CACHED:
            self._shapes.popitem(last=False)
        return shape

    def _read(self, query: str, operation_name: str | None) -> _Shape | None:
        try:
            document = parse(query)
        except GraphQLError:
            return None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != len(document.definitions):
            return None  # fragments
        chosen = [o for o in operations if operation_name in (None, o.name and o.name.value)]
        if len(chosen) != 1 or chosen[0].operation is not OperationType.SUBSCRIPTION:
            return None
        operation = chosen[0]
        roots = operation.selection_set.selections
        if operation.directives or len(roots) != 1 or not isinstance(roots[0], FieldNode):
            return None
        field = roots[0]
        if field.name.value != FIELD or field.directives or field.selection_set is None:
            return None
        selected = []
        for node in field.selection_set.selections:
            if not isinstance(node, FieldNode) or node.directives or node.arguments:
                return None
            if node.name.value not in SCALARS or node.selection_set is not None:
                return None
            selected.append(((node.alias or node.name).value, node.name.value))
        if validate(self._schema, document):
            return None
        return _Shape(operation, field, (field.alias or field.name).value, tuple(selected))


def _filter(given: Any, context: RequestContext) -> EventFilter:
    """The filter argument as the general path reads it."""
    if isinstance(given, BusinessEventFilter):  # graphql-core made it one already
        return given.narrowed(context.principal)

    def pick(*names: str) -> Any:
        return next((given[n] for n in names if given.get(n) is not None), None)

    chosen = BusinessEventFilter(
        events=pick("events"),
        categories=pick("categories"),
        legal_entities=pick("legalEntities", "legal_entities"),
        entities=pick("entities"),
    )
    return chosen.narrowed(context.principal)
