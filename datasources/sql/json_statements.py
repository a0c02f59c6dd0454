"""One statement per root field that builds the GraphQL response JSON in the store.

A plan says what to read, a shape how to lay the answer out. A forward page with no
pageInfo (the common case) is one ordered, limited read whose rows become JSON as they
are read; any other connection is a page subquery (filtered, past the cursors,
ordered, one row beyond the page) that aggregates into `json_build_object`. Relations
are correlated subqueries of the same forms, so the whole tree is one statement and
no row reaches Python. Scalars are
rendered as the GraphQL layer renders them (decimals and dates as text, enums by
symbol), and cursors byte for byte as `gateway.kernel.cursor` makes them.

SQLite builds the common case too (forward pages without pageInfo or cursors, to-one
relations, totalCount) with `json_object` and `json_group_array`; the rest is
`Unsupported` there, and the generic path answers it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from datasources.sql.compiler import ColumnFor, columns_of, order_clauses
from datasources.sql.statements import Statements, cursor_clauses, direction
from gateway.kernel.catalog import Cardinality, EntityField, FieldType
from gateway.kernel.cursor import CURSOR_VERSION, order_spec
from gateway.kernel.plan import ChildPlan, QueryPlan
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

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*( desc)?")
_POSITION = "@n"
_EMPTY: ColumnElement[Any] = literal_column("'[]'::json")
_ALL: ColumnElement[Any] = literal_column("()")


class Unsupported(Exception):
    """A selection this builder does not cover; the generic path answers it."""


def _text(value: str) -> ColumnElement[str]:
    """A GraphQL name or F&O field name as an SQL literal (names only: checked)."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"not a name: {value!r}")
    return literal_column(f"'{value}'", Text)


class JsonStatements:
    def __init__(self, statements: Statements) -> None:
        self.statements = statements
        self.sqlite = statements.dialect == "sqlite"

    def _object(self, *pieces: ColumnElement[Any]) -> ColumnElement[Any]:
        if len(pieces) > 100:
            raise Unsupported("a JSON object is built from at most 100 arguments")
        return (func.json_object if self.sqlite else func.json_build_object)(*pieces)

    def _rows(self, statement: Select[Any]) -> ColumnElement[Any]:
        """The JSON array of the one column a statement reads, in its order."""
        if not self.sqlite:
            return func.array_to_json(_ArrayOf(statement))
        # the subquery's order is the order its rows reach the aggregate; `json()`
        # restores the JSON type the values lose on their way out of the subquery
        rows = statement.subquery()
        item = next(iter(rows.c))
        return self._nested(select(func.json_group_array(func.json(item))).scalar_subquery())

    def _nested(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """A subquery's JSON as a value inside another object (SQLite reads it as text)."""
        return func.json(value) if self.sqlite else value

    def root(self, plan: QueryPlan, shape: RowShape | ConnectionShape) -> ColumnElement[Any]:
        """The JSON text of one root field (null for a by-key field that found nothing)."""
        if isinstance(shape, ConnectionShape):
            return cast(self._connection(plan, shape, None), Text)
        return cast(self._single(plan, shape, None), Text)

    def _page(self, plan: QueryPlan, correlation: Any) -> tuple[FromClause, ColumnFor]:
        table = self.statements.table(plan.entity)
        col = columns_of(plan.entity, table)
        order = order_clauses(direction(plan.order, plan.page), col)
        stmt = select(
            *(col(name).label(name) for name in plan.required_columns()),
            func.row_number().over(order_by=order).label(_POSITION),
        ).where(self.statements.condition(plan, col))
        if correlation is not None:
            stmt = stmt.where(correlation(col)).correlate(correlation.parent)
        if plan.page is not None:
            stmt = stmt.where(*cursor_clauses(plan, plan.page, col)).limit(plan.page.limit + 1)
        page = stmt.order_by(*order).subquery()
        return page, lambda name: page.c[name]

    def _connection(
        self, plan: QueryPlan, shape: ConnectionShape, correlation: Any
    ) -> ColumnElement[Any]:
        page_request = plan.page
        assert page_request is not None
        if not page_request.backwards and not any(
            isinstance(entry, PageInfoShape) for _, entry in shape.entries
        ):
            return self._listed(plan, shape, correlation)
        if self.sqlite:
            raise Unsupported("pageInfo and backward pages are built by PostgreSQL only")
        page, col = self._page(plan, correlation)
        size = page_request.limit
        position = page.c[_POSITION]
        in_page = position <= size
        backwards = page_request.backwards
        output_order = position.desc() if backwards else position.asc()
        reverse_order = position.asc() if backwards else position.desc()
        more = func.count() > size
        cursor = self._cursor(plan, col)

        def listed(item: ColumnElement[Any]) -> ColumnElement[Any]:
            aggregated = func.json_agg(aggregate_order_by(item, output_order)).filter(in_page)
            return func.coalesce(aggregated, _EMPTY)

        pieces: list[ColumnElement[Any]] = []
        for key, entry in shape.entries:
            pieces.append(_text(key))
            if isinstance(entry, TotalCount):
                pieces.append(self._total(plan, correlation))
            elif isinstance(entry, Nodes):
                pieces.append(listed(self._row(plan, entry.row, page, col)))
            elif isinstance(entry, Edges):
                pieces.append(listed(self._edge(plan, entry, page, col, lambda: cursor)))
            elif isinstance(entry, PageInfoShape):
                info: list[ColumnElement[Any]] = []
                for info_key, name in entry.entries:
                    info.append(_text(info_key))
                    if isinstance(name, Typename):
                        info.append(_text(name.name))
                    elif name == "hasNextPage":
                        info.append(
                            literal_column(str(page_request.before is not None))
                            if backwards
                            else more
                        )
                    elif name == "hasPreviousPage":
                        info.append(
                            more
                            if backwards
                            else literal_column(str(page_request.after is not None))
                        )
                    else:
                        first = output_order if name == "startCursor" else reverse_order
                        info.append(
                            func.array_agg(
                                aggregate_order_by(cursor, first), type_=ARRAY(Text)
                            ).filter(in_page)[1]
                        )
                pieces.append(func.json_build_object(*info))
            else:
                pieces.append(_text(entry.name))
        # one row, whether or not the page has rows or any piece aggregates
        statement = select(func.json_build_object(*pieces)).select_from(page).group_by(_ALL)
        if correlation is not None:
            statement = statement.correlate(correlation.parent)
        return statement.scalar_subquery()

    def _listed(
        self, plan: QueryPlan, shape: ConnectionShape, correlation: Any
    ) -> ColumnElement[Any]:
        """A forward page with no pageInfo: each list is one ordered, limited read whose
        rows become JSON as they are read (`ARRAY(SELECT … ORDER BY … LIMIT n)`), with
        no row numbers, no look-ahead row and no aggregate that sorts again."""
        page = plan.page
        assert page is not None
        table = self.statements.table(plan.entity).alias()
        col = columns_of(plan.entity, table)

        def rows(item: ColumnElement[Any]) -> ColumnElement[Any]:
            statement = self._read(plan, table, col, correlation, item)
            statement = statement.where(*cursor_clauses(plan, page, col)).limit(page.limit)
            return self._rows(statement)

        pieces: list[ColumnElement[Any]] = []
        for key, entry in shape.entries:
            pieces.append(_text(key))
            if isinstance(entry, TotalCount):
                pieces.append(self._total(plan, correlation))
            elif isinstance(entry, Nodes):
                pieces.append(rows(self._row(plan, entry.row, table, col)))
            elif isinstance(entry, Edges):
                cursor = partial(self._cursor, plan, col)  # SQLite: only if one is asked for
                pieces.append(rows(self._edge(plan, entry, table, col, cursor)))
            else:
                assert isinstance(entry, Typename)
                pieces.append(_text(entry.name))
        return self._object(*pieces)

    def _edge(
        self,
        plan: QueryPlan,
        edges: Edges,
        rows: FromClause,
        col: ColumnFor,
        cursor: Callable[[], ColumnElement[Any]],
    ) -> ColumnElement[Any]:
        """One edge: its cursor, its node, its __typename, as the selection orders them."""
        pieces: list[ColumnElement[Any]] = []
        for key, part in edges.entries:
            pieces.append(_text(key))
            if isinstance(part, Cursor):
                pieces.append(cursor())
            elif isinstance(part, Nodes):
                pieces.append(self._row(plan, part.row, rows, col))
            else:
                pieces.append(_text(part.name))
        return self._object(*pieces)

    def _single(self, plan: QueryPlan, shape: RowShape, correlation: Any) -> ColumnElement[Any]:
        table = self.statements.table(plan.entity).alias()
        col = columns_of(plan.entity, table)
        row = self._row(plan, shape, table, col)
        read = self._read(plan, table, col, correlation, row).limit(1).scalar_subquery()
        return self._nested(read)

    def _read(
        self,
        plan: QueryPlan,
        table: FromClause,
        col: ColumnFor,
        correlation: Any,
        item: ColumnElement[Any],
    ) -> Select[Any]:
        """`item` for each row the plan reads, in its order."""
        order = order_clauses(direction(plan.order, plan.page), col)
        statement = select(item).select_from(table).where(self.statements.condition(plan, col))
        if correlation is not None:
            statement = statement.where(correlation(col)).correlate(correlation.parent)
        return statement.order_by(*order)

    def _row(
        self, plan: QueryPlan, shape: RowShape, rows: FromClause, col: ColumnFor
    ) -> ColumnElement[Any]:
        entity = plan.entity
        children = {child.key: child for child in plan.children}
        pieces: list[ColumnElement[Any]] = []
        for key, entry in shape.entries:
            pieces.append(_text(key))
            if isinstance(entry, Column):
                field = entity.field(entry.field)
                render = _sqlite_rendered if self.sqlite else _rendered
                pieces.append(render(field, col(entry.field)))
            elif isinstance(entry, Nested):
                child = children[entry.child]
                correlation = _Correlation(child, rows, col)
                if child.relation.cardinality is Cardinality.MANY:
                    assert isinstance(entry.shape, ConnectionShape)
                    pieces.append(self._connection(child.plan, entry.shape, correlation))
                else:
                    assert isinstance(entry.shape, RowShape)
                    pieces.append(self._single(child.plan, entry.shape, correlation))
            else:
                pieces.append(_text(entry.name))
        return self._object(*pieces)

    def _total(self, plan: QueryPlan, correlation: Any) -> ColumnElement[Any]:
        table = self.statements.table(plan.entity)
        col = columns_of(plan.entity, table)
        statement = (
            select(func.count()).select_from(table).where(self.statements.condition(plan, col))
        )
        if correlation is not None:
            statement = statement.where(correlation(col)).correlate(correlation.parent)
        return statement.scalar_subquery()

    def _cursor(self, plan: QueryPlan, col: ColumnFor) -> ColumnElement[Any]:
        """`encode_cursor`, in SQL: base64url (no padding) of the same JSON text."""
        if self.sqlite:
            raise Unsupported("SQLite has no base64: cursors come from the generic path")
        values = [_cursor_value(plan.entity.field(t.field), col(t.field)) for t in plan.order]
        document = func.json_build_array(
            literal_column(str(CURSOR_VERSION), Integer),
            func.json_build_array(*(_text(s) for s in order_spec(plan.order))),
            func.json_build_array(*values),
        )
        encoded = func.encode(
            func.convert_to(cast(document, Text), literal_column("'UTF8'")),
            literal_column("'base64'"),
        )
        return func.translate(encoded, literal_column("E'+/=\\n'"), literal_column("'-_'"))


class _ArrayOf(ColumnElement[Any]):
    """PostgreSQL's `ARRAY(subquery)`: the subquery's rows as an array, in its order."""

    inherit_cache = False  # compiled once per prepared read, never from the cache

    def __init__(self, query: Select[Any]) -> None:
        self.query = query.scalar_subquery()


@compiles(_ArrayOf)
def _array_of(element: _ArrayOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"ARRAY{compiler.process(element.query, **kw)}"


class _Correlation:
    """Ties a child's rows to the parent row being rendered."""

    def __init__(self, child: ChildPlan, parent: FromClause, parent_col: ColumnFor) -> None:
        self.child = child
        self.parent = parent
        self.parent_col = parent_col

    def __call__(self, col: ColumnFor) -> ColumnElement[bool]:
        return and_(*(col(t) == self.parent_col(s) for s, t in self.child.relation.constraints))


def _rendered(field: EntityField, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The field as GraphQL serialises it."""
    if field.type is FieldType.ENUM:
        assert field.enum is not None
        return case({m.value: _text(m.symbol) for m in field.enum.members}, value=column)
    return _cursor_value(field, column)


def _cursor_value(field: EntityField, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The field as a cursor holds it: decimals and dates as text, the rest as is."""
    if field.type is FieldType.REAL:
        return cast(column, Text)
    if field.type is FieldType.DATE:
        return func.to_char(column, literal_column("'YYYY-MM-DD'"))
    if field.type is FieldType.UTC_DATETIME:
        seconds = func.to_char(column, literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS'"))
        fraction = case(
            (
                cast(func.date_part(literal_column("'microseconds'"), column), Integer) % 1_000_000
                != 0,
                func.to_char(column, literal_column("'.US'")),
            ),
            else_=literal_column("''"),
        )
        return func.concat(seconds, fraction, literal_column("'+00:00'"))
    return column


def _sqlite_rendered(field: EntityField, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The field as GraphQL serialises it, from SQLite's storage: decimals are REAL
    (printed at the field's scale, as SQLAlchemy reads them), dates and timestamps text
    (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS.ffffff` in UTC)."""
    if field.type is FieldType.REAL:
        scale = field.scale if field.scale is not None else 6
        printed = func.printf(literal_column(f"'%.{int(scale)}f'"), column)
        return case((column.is_(None), None), else_=printed)
    if field.type is FieldType.DATE:
        return column
    if field.type is FieldType.UTC_DATETIME:
        fraction = func.substr(column, 21, 6)
        seconds = func.replace(func.substr(column, 1, 19), literal_column("' '"), _text("T"))
        micros = case(
            (func.coalesce(fraction, "").in_(["", "000000"]), literal_column("''")),
            else_=literal_column("'.'").op("||")(fraction),
        )
        iso = seconds.op("||")(micros).op("||")(literal_column("'+00:00'"))
        return case((column.is_(None), None), else_=iso)
    return _rendered(field, column)
