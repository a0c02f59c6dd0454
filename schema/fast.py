"""The fast read path: a query whose root fields are all entity reads is answered with
one statement whose JSON the store builds, with no field-by-field resolution.

Anything it does not cover (mutations, the catalog, introspection, a store that
cannot build JSON, any error to report) returns None, and the request takes the
generic path, which gives the same answer or the proper error.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

import orjson
from cachetools import LRUCache
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    ObjectFieldNode,
    OperationDefinitionNode,
    OperationType,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    get_argument_values,
    get_operation_ast,
    parse,
    specified_rules,
    type_from_ast,
    validate,
    visit,
)
from graphql.execution.values import VariableValues, get_variable_values

from gateway.auth import Role
from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.errors import GatewayError
from gateway.kernel.plan import COMPARISONS, QueryPlan, Slot
from gateway.kernel.shape import Shape
from schema.context import RequestContext
from schema.entities import companies_asked, company_argument
from schema.planner import FNO, EntityBinding, Planner

PREPARED_CACHE = 512


class Answer(NamedTuple):
    body: bytes  # the whole response
    operation: str | None  # the operation's name


@dataclass
class _Prepared:
    """A query made ready: the statement to run and where each answer goes."""

    keys: tuple[str, ...]  # every root response key, in order
    reads: tuple[str, ...]  # the keys the statement answers, in its column order
    constants: dict[str, bytes]  # the keys answered without the store (__typename)
    statement: object
    companies: tuple[str | None, ...]  # legal entities read (None: every one)
    source: str  # the one store every root field reads
    operation: str | None = None  # its name
    bound: frozenset[str] = frozenset()  # the variables the statement takes as parameters
    definitions: tuple[VariableDefinitionNode, ...] = ()

    @cached_property
    def names(self) -> dict[str, bytes]:
        """Each root key as it opens its member of the response object."""
        return {key: orjson.dumps(key) + b":" for key in self.keys}


@dataclass(frozen=True)
class RootField:
    entity: EntityMetadata
    by_key: bool


class FastReads:
    def __init__(
        self,
        schema: GraphQLSchema,
        bindings: Mapping[str, EntityBinding],
        roots: Mapping[str, RootField],
        rules: list[Any],
        max_tokens: int,
    ) -> None:
        self.schema = schema
        self.bindings = bindings
        self.roots = roots
        self.rules = [*specified_rules, *rules]
        self.max_tokens = max_tokens
        self._document = lru_cache(maxsize=256)(self._parse_and_validate)
        # by request: the POST body, or the query, operation and the values that key it
        self._prepared: LRUCache[Hashable, _Prepared] = LRUCache(PREPARED_CACHE)
        self._slots: LRUCache[tuple[str, str | None], frozenset[str]] = LRUCache(PREPARED_CACHE)
        self.answered = 0  # requests this path answered (the rest took the generic path)

    def _parse_and_validate(self, query: str) -> DocumentNode | None:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        return None if validate(self.schema, document, self.rules) else document

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: RequestContext,
    ) -> Answer | None:
        """The response, or None: the generic path answers."""
        return await self._answer(query, variables or {}, operation_name, context, None)

    async def execute_body(self, body: bytes, context: RequestContext) -> Answer | None:
        """`execute` for a POST body as sent: a body seen before costs one lookup."""
        prepared = self._prepared.get(body)
        if prepared is not None:
            return await self._run(prepared, {}, context)
        params = _params(body)
        if params is None:
            return None
        query, variables, operation_name = params
        return await self._answer(query, variables or {}, operation_name, context, body)

    async def _answer(
        self,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None,
        context: RequestContext,
        body: bytes | None,
    ) -> Answer | None:
        slots = self._slots.get((query, operation_name))
        if slots is None:
            slots = self._slots[query, operation_name] = self._bindable(query, operation_name)
        bound = frozenset(n for n in slots if variables.get(n) is not None)
        key = _key(query, operation_name, variables, bound)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepare(query, variables, operation_name, context, bound)
            if prepared is None:
                return None
            if prepared.bound != bound:  # a slot was looked at while planning: no slots
                self._slots[query, operation_name] = frozenset()
                key = _key(query, operation_name, variables, frozenset())
            self._prepared[key] = prepared
        arguments: dict[str, Any] = {}
        if prepared.bound:
            coerced = get_variable_values(
                self.schema,
                [d for d in prepared.definitions if d.variable.name.value in prepared.bound],
                {name: variables[name] for name in prepared.bound},
            )
            if isinstance(coerced, list):
                return None  # the generic path reports the bad value
            arguments = coerced.coerced
        elif body is not None:
            self._prepared[body] = prepared  # the same body again: one lookup
        return await self._run(prepared, arguments, context)

    async def _run(
        self,
        prepared: _Prepared,
        arguments: dict[str, Any],
        context: RequestContext,
    ) -> Answer | None:
        principal = context.principal
        if not principal.has(Role.READER):
            return None
        if principal.companies is not None and not all(
            principal.may_read(c) for c in prepared.companies
        ):
            return None  # the generic path says which legal entity is not allowed
        store = context.source(prepared.source)
        answers = (
            await context.in_time(store.fetch_json(prepared.statement, arguments))
            if prepared.reads
            else []
        )
        if answers is None:
            return None
        parts = dict(prepared.constants)
        for key, answer in zip(prepared.reads, answers, strict=True):
            parts[key] = answer.encode() if answer is not None else b"null"
        self.answered += 1
        body = b",".join(prepared.names[key] + parts[key] for key in prepared.keys)
        return Answer(b'{"data":{' + body + b"}}", prepared.operation)

    def _bindable(self, query: str, operation_name: str | None) -> frozenset[str]:
        """The variables that can stay slots: scalars used only as the operand of a
        comparison (eq, neq, gt, gte, lt, lte) in a `where` filter, whose values reach
        the statement as they are. Any other use (a key, a company, a page size, a
        cursor) shapes the plan or is checked while planning, and keys the plan."""
        document = self._document(query)
        operation = get_operation_ast(document, operation_name) if document else None
        if document is None or operation is None:
            return frozenset()
        candidates = set()
        for definition in operation.variable_definitions or ():
            kind = type_from_ast(self.schema, definition.type)
            if isinstance(kind, GraphQLNonNull):
                kind = kind.of_type
            if isinstance(kind, GraphQLScalarType):
                candidates.add(definition.variable.name.value)
        uses = _VariableUses()
        visit(document, uses)
        return frozenset(candidates - uses.elsewhere)

    def _prepare(
        self,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None,
        context: RequestContext,
        bound: frozenset[str],
    ) -> _Prepared | None:
        """Plan every root field, and have the store prepare its statement; None: not ours.

        The variables in `bound` are planned as slots; if planning looks at one, the
        plan is made again with every value (and `bound` is empty in what it returns).
        """
        document = self._document(query)
        if document is None:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        definitions = tuple(operation.variable_definitions or ())
        coerced = get_variable_values(self.schema, definitions, variables)
        if isinstance(coerced, list):
            return None
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        slots = {name: Slot(name) for name in bound}
        planned = VariableValues(coerced.sources, {**coerced.coerced, **slots})
        planner = Planner(self.bindings, context.limits, self.schema, fragments, planned)
        try:
            made = self._statement(planner, operation, context)
        except TypeError:
            if not bound:
                raise
            return self._prepare(query, variables, operation_name, context, frozenset())
        if made is None:
            return None
        name = operation.name.value if operation.name else None
        return replace(made, operation=name, bound=bound, definitions=definitions)

    def _statement(
        self, planner: Planner, operation: OperationDefinitionNode, context: RequestContext
    ) -> _Prepared | None:
        roots = planner.collect_root(operation.selection_set)
        reads: list[tuple[QueryPlan, Shape]] = []
        companies: list[str | None] = []
        sources = {
            self.bindings[r.entity.name].source
            for r in (self.roots.get(n[0].name.value) for n in roots.values())
            if r is not None
        }
        if len(sources) > 1:
            return None  # one statement cannot read two stores
        source = sources.pop() if sources else FNO
        keys: list[str] = []
        constants: dict[str, bytes] = {}
        try:
            for key, nodes in roots.items():
                name = nodes[0].name.value
                if name == "__typename":
                    constants[key] = b'"Query"'
                    continue
                root = self.roots.get(name)
                if root is None:
                    return None
                reads.append(self._plan(planner, root, nodes, companies))
                keys.append(key)
            context.limits.check_cost(sum(plan.cost() for plan, _ in reads))
            statement = context.source(source).prepare_json(reads) if reads else ()
        except GatewayError:
            return None
        if statement is None:
            return None
        return _Prepared(tuple(roots), tuple(keys), constants, statement, tuple(companies), source)

    def _plan(
        self,
        planner: Planner,
        root: RootField,
        nodes: list[FieldNode],
        companies: list[str | None],
    ) -> tuple[QueryPlan, Shape]:
        definition = self.schema.query_type.fields[nodes[0].name.value]  # type: ignore[union-attr]
        args = get_argument_values(definition, nodes[0], planner.variables)
        entity = root.entity
        companies += companies_asked(self.bindings[entity.name], args, root.by_key)
        if root.by_key:
            return planner.by_key(entity, nodes, args), planner.row_shape(entity, nodes)
        plan = planner.connection(entity, nodes, args, company_argument(entity, args))
        return plan, planner.connection_shape(entity, nodes)


def _params(body: bytes) -> tuple[str, dict[str, Any] | None, str | None] | None:
    """Query, variables and operation name of a plain GraphQL POST body; None for
    anything else (the generic path reports what is wrong with it)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or raw.keys() - {"query", "variables", "operationName"}:
        return None
    query, variables, name = raw.get("query"), raw.get("variables"), raw.get("operationName")
    if (
        not isinstance(query, str)
        or not isinstance(variables, dict | None)
        or not isinstance(name, str | None)
    ):
        return None
    return query, variables or None, name or None


def _key(
    query: str, operation_name: str | None, variables: dict[str, Any], bound: frozenset[str]
) -> tuple[Any, ...]:
    """What a plan is kept under: the values of the variables that are not slots."""
    rest = {n: v for n, v in variables.items() if n not in bound}
    return (query, operation_name, orjson.dumps(rest, option=orjson.OPT_SORT_KEYS), bound)


class _VariableUses(Visitor):
    """Collects the variables used anywhere but as a comparison's operand in `where`."""

    def __init__(self) -> None:
        super().__init__()
        self.elsewhere: set[str] = set()

    def enter_variable(
        self, node: VariableNode, _key: Any, parent: Any, _path: Any, ancestors: list[Any]
    ) -> None:
        if isinstance(parent, VariableDefinitionNode):
            return  # its declaration
        in_where = any(isinstance(a, ArgumentNode) and a.name.value == "where" for a in ancestors)
        if not (
            in_where and isinstance(parent, ObjectFieldNode) and parent.name.value in COMPARISONS
        ):
            self.elsewhere.add(node.name.value)
