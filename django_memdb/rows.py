"""Rows of an in-memory table to and from Django's serializer format.

Stored data is the serializer format (``{"model", "pk", "fields"}`` dicts)
with JSON values. Columns whose SQLite value already is that JSON value
(integers, text, floats) are copied as they are; every other field goes
through the field's own converters, so any field type round-trips.
"""

from __future__ import annotations

import datetime
import decimal
import json
import reprlib
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from operator import itemgetter
from types import SimpleNamespace
from typing import Any, cast

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.fields.related import RelatedField
from django.utils.encoding import is_protected_type

_IDENTITY = (
    models.AutoField,
    models.BigAutoField,
    models.SmallAutoField,
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
    models.CharField,
    models.TextField,
    models.SlugField,
    models.EmailField,
    models.URLField,
    models.FloatField,
)

Converter = Callable[[Any], Any]

# What an integer column can hold (SQLite, PostgreSQL bigint, MySQL BIGINT).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def short_repr() -> reprlib.Repr:
    """A repr of bounded length and depth, for stored values named in an error."""
    short = reprlib.Repr()  # keyword arguments only from Python 3.12
    short.maxlevel, short.maxdict, short.maxlist, short.maxtuple = 3, 6, 6, 6
    short.maxstring, short.maxlong, short.maxother = 60, 40, 60
    return short


_short = short_repr().repr

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _value_type(field: models.Field[Any, Any]) -> type:
    # A foreign key column holds its target's value.
    while isinstance(field, RelatedField) and (field.many_to_one or field.one_to_one):
        field = field.target_field
    return type(field)


def _json_types(field: models.Field[Any, Any]) -> tuple[type, ...] | None:
    """JSON types a copied column accepts (None: the field converts its values)."""
    kind = _value_type(field)
    if kind not in _IDENTITY:
        return None
    if issubclass(kind, (models.IntegerField, models.AutoField)):
        return (int,)
    if kind is models.FloatField:
        return (int, float)
    return (str,)


def _json_value(value: Any) -> Any:
    """A protected (non-string) Python value as DjangoJSONEncoder would write it, unrounded."""
    if isinstance(value, datetime.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


class TableCodec:
    """Converts one model's rows between SQLite values and serializer items."""

    def __init__(self, model: type[models.Model], connection: BaseDatabaseWrapper) -> None:
        meta = model._meta
        self.model = model
        self.label = meta.label_lower
        self.table = meta.db_table
        self.pk = meta.pk
        self.fields = [field for field in meta.local_concrete_fields if field is not self.pk]
        self.names = [field.name for field in self.fields]
        quote = connection.ops.quote_name
        self.columns = [quote(self.pk.column)] + [quote(field.column) for field in self.fields]
        self.quoted_table = quote(self.table)
        self._connection = connection
        self._to_json = [self._to_json_converter(field) for field in [self.pk, *self.fields]]
        self._from_json = [self._from_json_converter(field) for field in [self.pk, *self.fields]]
        self._identity = all(c is None for c in self._to_json + self._from_json)
        # Copied values are still checked: SQLite would store text in an integer column.
        self._expected = [
            (_json_types(field), field.null) for field in [self.pk, *self.fields]
        ]
        self._getter = itemgetter(*self.names) if self.names else None
        self._vendor = connection.vendor
        self._mark = "?" if connection.vendor == "sqlite" else "%s"
        self.upsert = self._upsert_sql()
        self.delete = f"DELETE FROM {self.quoted_table} WHERE {self.columns[0]} = {self._mark}"

    # SQLite value -> serializer value

    def _to_json_converter(self, field: models.Field[Any, Any]) -> Converter | None:
        kind = _value_type(field)
        if kind in _IDENTITY:
            return None
        if kind is models.BooleanField:
            return lambda value: None if value is None else bool(value)
        connection = self._connection
        column = field.get_col(self.table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)

        def convert(value: Any) -> Any:
            for converter in converters:
                value = converter(value, column, connection)
            if value is None or is_protected_type(value):
                return _json_value(value)
            # value_to_string reads the one attribute of whatever it is given.
            holder = cast(models.Model, SimpleNamespace(**{field.attname: value}))
            return field.value_to_string(holder)

        return convert

    # serializer value -> SQLite parameter

    def _from_json_converter(self, field: models.Field[Any, Any]) -> Converter | None:
        if _value_type(field) in _IDENTITY:
            return None
        connection = self._connection

        def convert(value: Any) -> Any:
            if value is None:
                return None
            return field.get_db_prep_save(field.to_python(value), connection)

        return convert

    def item(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """Serializer item of a row selected as ``select_columns``."""
        if not self._identity:
            row = tuple(
                value if convert is None else convert(value)
                for convert, value in zip(self._to_json, row, strict=False)
            )
        return {"model": self.label, "pk": row[0], "fields": dict(zip(self.names, row[1:], strict=False))}

    def pk_to_json(self, value: Any) -> Any:
        convert = self._to_json[0]
        return value if convert is None else convert(value)

    def pk_param(self, value: Any) -> Any:
        convert = self._from_json[0]
        return value if convert is None else convert(value)

    def key(self, value: Any) -> Any:
        """SQLite parameter of a stored primary key, checked like the values of a row."""
        self._check((value,))
        return self.pk_param(value)

    def params(self, item: dict[str, Any]) -> tuple[Any, ...]:
        """SQLite parameters (in ``select_columns`` order) of a serializer item."""
        fields = item["fields"]
        if self._identity:
            try:
                if self._getter is None:
                    return (item["pk"],)
                values = self._getter(fields)
                row = (item["pk"], *values) if len(self.names) > 1 else (item["pk"], values)
            except KeyError:
                pass
            else:
                self._check(row)
                return row
        self._check((item["pk"],))
        out = [self.pk_param(item["pk"])]
        for field, name, convert in zip(self.fields, self.names, self._from_json[1:], strict=False):
            if name in fields:
                value = fields[name]
                out.append(value if convert is None else convert(value))
            else:
                # Stored before the field existed: use the field's default.
                out.append(field.get_db_prep_save(field.get_default(), self._connection))
        self._check(out)
        return tuple(out)

    def _check(self, values: Iterable[Any]) -> None:
        for value, (types, nullable) in zip(values, self._expected, strict=False):
            if types is None:
                continue
            if not isinstance(value, types):
                if not (value is None and nullable):
                    raise ValueError(f"{_short(value)} is not a valid stored value here")
            elif value.__class__ is int and not INT_MIN <= value <= INT_MAX:
                raise ValueError(f"{_short(value)} does not fit a 64-bit integer column")

    @property
    def select_columns(self) -> str:
        return ", ".join(self.columns)


    def _upsert_sql(self) -> str:
        placeholders = ", ".join([self._mark] * len(self.columns))
        sql = f"INSERT INTO {self.quoted_table} ({self.select_columns}) VALUES ({placeholders}) "
        rest = self.columns[1:]
        if self._vendor == "mysql":
            # MySQL has no DO NOTHING: a key-only row "updates" its key to itself.
            updates = ", ".join(f"{column} = VALUES({column})" for column in rest or self.columns[:1])
            return sql + f"ON DUPLICATE KEY UPDATE {updates}"
        if not rest:
            return sql + f"ON CONFLICT ({self.columns[0]}) DO NOTHING"
        updates = ", ".join(f"{column} = excluded.{column}" for column in rest)
        return sql + f"ON CONFLICT ({self.columns[0]}) DO UPDATE SET {updates}"


_codecs: dict[tuple[type[models.Model], str], TableCodec] = {}


def codec_for(model: type[models.Model], connection: BaseDatabaseWrapper) -> TableCodec:
    key = (model, connection.alias)
    codec = _codecs.get(key)
    if codec is None:
        codec = _codecs[key] = TableCodec(model, connection)
    return codec


# The stored JSON: one item a line, so that a large snapshot is read in chunks.


class EncodedLines(list):  # type: ignore[type-arg]
    """Items already encoded as their lines of the stored JSON (``encode_item``).

    A flush keeps the rows it read this way rather than as serializer dicts:
    strings are not tracked by the garbage collector, so thousands of rows
    held across a write neither trigger its collections nor lengthen them.
    """

    def decoded(self) -> list[dict[str, Any]]:
        """The serializer items, for processors that need them."""
        return [json.loads(line) for line in self]


def as_items(items: Iterable[Any]) -> Iterable[dict[str, Any]]:
    """Serializer items of a batch, whether kept as dicts or as ``EncodedLines``."""
    return items.decoded() if isinstance(items, EncodedLines) else items


def deleted_line(label: str, pk: Any) -> str:
    """The line of a deleted row's item, as ``encode_item`` writes it (without building the dict)."""
    return f'{{"model":{_encode_json(label)},"pk":{_encode_json(pk)},"fields":{{}},"deleted":true}}'


def encode_items(items: Iterable[Any], chunk_size: int = 10_000) -> bytes:
    """The JSON list, built a chunk at a time: a large table is never held as strings."""
    if isinstance(items, EncodedLines):
        return join_encoded(items)
    if isinstance(items, list) and len(items) <= chunk_size:  # a journal entry: one chunk
        return join_encoded(list(map(_encode_json, items)), chunk_size)
    return join_encoded(map(_encode_json, items), chunk_size)


def encode_item(item: dict[str, Any]) -> str:
    """One item's line of the stored list (a str: not tracked by the garbage collector)."""
    return _encode_json(item)


# Lines joined and encoded per call in join_encoded: one C call holds the GIL, every
# thread of the process waits for it; 100,000 lines at once would take tens of ms.
JOIN_CHUNK = 2000


def join_encoded(lines: Iterable[str], chunk_size: int = JOIN_CHUNK) -> bytes:
    """The stored list of items encoded one by one with ``encode_item``, joined ``chunk_size`` at a time."""
    if isinstance(lines, list) and len(lines) <= chunk_size:
        return b"[\n" + ",\n".join(lines).encode("utf-8") + b"\n]"
    out = bytearray(b"[\n")
    lines = iter(lines)
    while chunk := list(islice(lines, chunk_size)):
        if len(out) > 2:
            out += b",\n"
        out += ",\n".join(chunk).encode("utf-8")
    out += b"\n]"
    return bytes(out)


def iter_chunked_items(chunks: Iterable[bytes]) -> Iterator[Any]:
    """Items of a stored JSON list that arrives in pieces (a snapshot read in ranges)."""
    pieces = iter(chunks)
    head = next(pieces, b"")
    if not head.startswith(b"[\n"):
        yield from iter_items(head + b"".join(pieces))
        return
    buffer = head[2:]
    for piece in pieces:
        buffer += piece
        cut = buffer.rfind(b",\n")
        if cut >= 0:
            yield from json.loads(b"[" + buffer[:cut] + b"]")
            buffer = buffer[cut + 2 :]
    if not buffer.endswith(b"\n]"):
        raise ValueError("the stored list is cut short")
    if buffer[:-2].strip():
        yield from json.loads(b"[" + buffer[:-2] + b"]")


def iter_items(blob: bytes, chunk_size: int = 1 << 20) -> Iterator[Any]:
    """Items of a stored JSON list, parsed a chunk at a time when it has our layout."""
    if not (blob.startswith(b"[\n") and blob.endswith(b"\n]")):
        data = json.loads(blob.decode("utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"expected a JSON list, got {type(data).__name__}")
        yield from data
        return
    position, end = 2, len(blob) - 2
    while position < end:
        # JSON strings cannot hold a raw newline, so ",\n" only separates items.
        cut = blob.find(b",\n", position + chunk_size, end)
        if cut == -1:
            cut = end
        yield from json.loads(b"[" + blob[position:cut] + b"]")
        position = cut + 2
