"""Helpers of every hand-written SQL statement (the ``sql.py`` modules of the apps build theirs with these).

A statement is built as ``(sql, params)``. ``compose`` fills a template's named slots in text order, each
with a value (one ``%s`` parameter) or a ``Fragment`` (its SQL and its own parameters), so a value is written
next to the name of the place it goes and the order of the parameters is the order of the text — never a
list kept in step with the SQL by a comment. Table and column names come from the models, quoted by the
database backend.
"""

from __future__ import annotations

import string
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model, QuerySet

T = TypeVar("T")


@dataclass(frozen=True)
class Fragment:
    """A piece of SQL with the parameters of its ``%s`` placeholders, in text order."""

    sql: str
    params: tuple[Any, ...] = ()

    def __iter__(self) -> Iterator[Any]:  # unpacks as (sql, params)
        yield self.sql
        yield list(self.params)


def compose(template: str, **parts: Any) -> Fragment:
    """``template`` with each ``{name}`` replaced: a Fragment by its SQL (its parameters taken along), any
    other value by one ``%s`` parameter. Every part must be used (a slot left out is a mistake) and the
    template itself may hold no ``%s`` of its own."""
    if "%s" in template:
        raise ValueError("compose: the template has a bare %s; give the value a named slot")
    sql: list[str] = []
    params: list[Any] = []
    used: set[str] = set()
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        sql.append(literal)
        if name is None:
            continue
        used.add(name)
        value = parts[name]
        if isinstance(value, Fragment):
            sql.append(value.sql)
            params.extend(value.params)
        else:
            sql.append("%s")
            params.append(value)
    unused = set(parts) - used
    if unused:
        raise ValueError(f"compose: parts not in the template: {sorted(unused)}")
    return Fragment("".join(sql), tuple(params))


def join(fragments: Sequence[Fragment], separator: str) -> Fragment:
    """Fragments joined by ``separator`` (plain SQL), their parameters in order."""
    return Fragment(separator.join(f.sql for f in fragments), tuple(p for f in fragments for p in f.params))


def table(model: type[Model]) -> str:
    """The model's table name, quoted by the backend."""
    return connection.ops.quote_name(model._meta.db_table)


def model_field(model: type[Model], name: str) -> Field[Any, Any]:
    """The model's own field ``name`` (a name of a reverse relation here is a programming error)."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field), f"{model.__name__}.{name} is a reverse relation, not a field"
    return field


def column_name(model: type[Model], name: str) -> str:
    """The column of the model's field ``name``, unquoted (quote it with the backend that runs the SQL)."""
    field_column = model_field(model, name).column
    assert field_column is not None, f"{model.__name__}.{name} has no column"
    return field_column


def column(model: type[Model], name: str) -> str:
    """The column of the model's field ``name``, quoted by the backend."""
    return connection.ops.quote_name(column_name(model, name))


def sql_in(column_sql: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """``column IN (…)`` for a chunk of ids: one array parameter on PostgreSQL, one placeholder each on SQLite."""
    if connection.vendor == "postgresql":
        return f"{column_sql} = ANY(%s)", [list(ids)]
    if not ids:
        return "1 = 0", []
    return f"{column_sql} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def compiled(queryset: QuerySet[Any]) -> Fragment:
    """The SQL of ``SELECT pk`` over the queryset, to use as a subquery of a hand-written statement."""
    sql, params = queryset.values("pk").query.get_compiler(connection=connection).as_sql()
    return Fragment(sql, tuple(params))


def db_value(model: type[Model], name: str, value: Any) -> Any:
    """``value`` as the database stores the model's field ``name`` (a parameter of hand-written SQL)."""
    return model_field(model, name).get_db_prep_save(value, connection)


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:  # an array of ids is a Sequence too
    """Consecutive slices of at most ``size`` items, as lists (an id array's slices too)."""
    for start in range(0, len(items), size):
        part = items[start : start + size]
        yield part.tolist() if isinstance(part, array) else list(part)


class RowReader:
    """Model instances from the columns of a hand-written ``SELECT``, converted as the ORM converts them.

    ``columns(alias)`` lists the fields' columns (quoted, prefixed with the table alias of the statement);
    ``read(values)`` takes that many values from a result row and builds the instance with ``Model.from_db``
    after the backend's and the fields' own converters (dates and booleans on SQLite, JSON, time zones) — so a
    statement written once per process answers the same objects as the queryset it replaces, without the
    queryset's per-request compilation. The columns come in the model's field order, whatever the order of
    ``field_names``; fields not listed are deferred (read on first access).
    """

    def __init__(self, model: type[Model], field_names: Sequence[str] | None = None) -> None:
        opts = model._meta
        self.model = model
        wanted = {model_field(model, n).attname for n in field_names} if field_names else None
        # In the model's own field order: Model.from_db takes the values of a partial row in that order.
        self.fields = [f for f in opts.concrete_fields if wanted is None or f.attname in wanted]
        if wanted is not None and len(self.fields) != len(wanted):
            raise ValueError(f"{model.__name__}: not concrete fields: {sorted(wanted - set(self.attnames_of()))}")
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)
        self._converters: dict[str, list[tuple[int, Any, Any]]] = {}

    def attnames_of(self) -> list[str]:
        return [f.attname for f in self.fields]

    def columns(self, alias: str) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{alias}.{quote(column_name(self.model, f.name))}" for f in self.fields)

    def _converters_for(self, db: Any) -> list[tuple[int, Any, Any]]:
        """(position, converter, column) of every converter to apply, in order; most columns need none."""
        found = self._converters.get(db.vendor)
        if found is None:
            found = []
            for position, f in enumerate(self.fields):
                col = f.get_col(self.model._meta.db_table)
                found.extend((position, c, col) for c in [*db.ops.get_db_converters(col), *f.get_db_converters(db)])
            self._converters[db.vendor] = found
        return found

    def read(self, values: Sequence[Any], using: str = "default") -> Any:
        converted = list(values)
        for position, converter, col in self._converters_for(connection):
            converted[position] = converter(converted[position], col, connection)
        return self.model.from_db(using, self.attnames, converted)
