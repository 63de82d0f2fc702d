"""From a JSON page to columns: flatten each record, type each column across pages.

Picking the records out of the page is :mod:`.record_path`; flattening nested objects is
:mod:`.flatten`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import pyarrow as pa

from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.sources.http.flatten import (
    SEP,
    FlattenError,
    flatten_record,
    flatten_struct,
    render_path,
)
from dataproc_dagster.sources.http.record_path import json_type

# Column kinds. "float" absorbs "int"; a list column is "list:<scalar kind>" or "json".
_SCALAR_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
}


_TYPE_KINDS: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    list: "list",
    dict: "json",
}


class ListMode(StrEnum):
    """How JSON lists become columns."""

    AUTO = "auto"  # Arrow lists (ClickHouse Array) when the elements share one scalar type
    JSON = "json"  # every list as JSON text


class RecordConverter:
    """Turn pages of JSON records into Arrow tables with one stable type per column.

    The converter remembers each column's kind across pages, so that a field that is a number
    on one page and a string on another fails with the page and the field named, before any
    row reaches the target.

    Args:
        max_depth: Levels of nested objects flattened into ``parent_child`` columns.
        list_mode: ``auto`` stores lists whose elements share one scalar type as Arrow lists
            (ClickHouse ``Array``) and others as JSON strings; ``json`` stores every list as JSON.
    """

    def __init__(self, *, max_depth: int = 3, list_mode: ListMode | str = ListMode.AUTO) -> None:
        if list_mode not in set(ListMode):
            raise ValueError("list_mode must be 'auto' or 'json'")
        if max_depth < 0:
            raise ValueError("max_depth must not be negative")
        self.max_depth = max_depth
        self.list_mode = ListMode(list_mode)
        self.kinds: dict[str, str] = {}
        self._first_seen: dict[str, str] = {}
        # Column name -> the source path that gives it, and the page where it was first met:
        # two fields flattening to one name are an error, also across pages.
        self._paths: dict[str, str] = {}
        self._path_seen: dict[str, str] = {}

    def convert(self, records: Sequence[Any], *, where: str) -> pa.Table:
        """Convert one page of records; ``where`` (the page URL, masked) names it in errors."""
        table = self._convert_in_arrow(records, where)
        return table if table is not None else self._convert_in_python(records, where)

    def _convert_in_arrow(self, records: Sequence[Any], where: str) -> pa.Table | None:
        # The common case, done by Arrow's own type inference in C++ (several times faster).
        # Anything unusual (mixed types, mixed lists, objects deeper than max_depth, empty
        # objects, odd key names) returns None and goes through the Python path, which holds
        # the rules and the error messages.
        if self.list_mode != ListMode.AUTO:
            return None
        try:
            array = pa.array(records)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            return None
        if not pa.types.is_struct(array.type) or array.null_count:
            return None
        columns: list[tuple[str, pa.ChunkedArray]] = []
        sources: list[str] = []
        if not flatten_struct(pa.chunked_array([array]), "", "", self.max_depth, columns, sources):
            return None
        names = [name for name, _ in columns]
        if len(set(names)) != len(names):
            return None  # the Python path names the colliding fields and the record
        for name, path in zip(names, sources, strict=True):
            known = self._paths.get(name)
            if known is None:
                self._paths[name] = path
                self._path_seen[name] = where
            elif known != path:
                # Which record of this page holds it: let the Python path find and name it.
                return None
        kinds: list[str | None] = []
        for _, column in columns:
            kind = _arrow_kind(column.type)
            if kind == "":
                return None
            kinds.append(kind)
        arrays = []
        for (name, column), kind in zip(columns, kinds, strict=True):
            if kind is None:
                previous = self.kinds.get(name)
                target = self._arrow_type(previous) if previous else pa.null()
                arrays.append(pa.nulls(len(column), target))
                continue
            merged = self._merge(name, kind, where)
            wanted = self._arrow_type(merged)
            arrays.append(column if column.type == wanted else column.cast(wanted))
        return pa.Table.from_arrays(arrays, names=names) if names else None

    def _convert_in_python(self, records: Sequence[Any], where: str) -> pa.Table:
        flats: list[dict[str, Any]] = []
        names: dict[str, None] = {}
        for index, record in enumerate(records):
            if type(record) is not dict and not isinstance(record, Mapping):
                raise SourceError(
                    f"record {index} is a JSON {json_type(record)}, not an object",
                    source=where,
                    fix="set records_path to the list whose items are objects with the fields",
                )
            try:
                flat = flatten_record(record, self.max_depth, paths=self._paths)
            except FlattenError as exc:
                raise self._flatten_error(exc, index, where) from None
            flats.append(flat)
            if len(flat) != len(names) or flat.keys() != names.keys():
                names.update(dict.fromkeys(flat))
        columns = {name: [f.get(name) for f in flats] for name in names}
        for name in list(columns):
            # A null where other records hold an object: its flattened columns carry the nulls
            # (as on the Arrow path), so no extra all-null column of the object's own name.
            if all(v is None for v in columns[name]) and any(
                other.startswith(name + SEP) for other in columns
            ):
                del columns[name]
        for name in names:
            self._path_seen.setdefault(name, where)
        arrays = [self._column(name, values, where) for name, values in columns.items()]
        names = dict.fromkeys(columns)
        return pa.Table.from_arrays(arrays, names=list(names)) if names else pa.table({})

    def _flatten_error(self, exc: FlattenError, index: int, where: str) -> SourceError:
        if not exc.name:
            return SourceError(
                f"record {index} has a field with an empty key at {render_path(exc.paths[0])!r}; "
                "a column needs a name",
                source=where,
                fix="have the API name the field; if it sits in a nested object, lower max_depth "
                "so that the object stays one JSON column",
            )
        first, second = (render_path(p) for p in exc.paths)
        seen = self._path_seen.get(exc.name)
        earlier = f" (first at {seen})" if seen and seen != where else ""
        return SourceError(
            f"record {index}: fields {first!r}{earlier} and {second!r} both become column "
            f"{exc.name!r} when nested objects are flattened",
            source=where,
            fix="lower max_depth so that the nested object stays one JSON column, or rename "
            "one of the fields in the source",
        )

    def _column(self, name: str, values: list[Any], where: str) -> pa.Array:
        types = set(map(type, values))
        types.discard(type(None))
        kinds = {_TYPE_KINDS.get(t, "json") for t in types}
        list_kinds: set[str] = set()
        if "list" in kinds:
            element_types: set[type] = set()
            for value in values:
                if type(value) is list:
                    element_types.update(map(type, value))
            element_types.discard(type(None))
            list_kinds = {_TYPE_KINDS.get(t, "json") for t in element_types}
        kind = self._page_kind(name, kinds, list_kinds, where)
        if kind is None:
            previous = self.kinds.get(name)
            return pa.nulls(len(values), self._arrow_type(previous) if previous else pa.null())
        kind = self._merge(name, kind, where)
        if kind == "json":
            values = [None if v is None else _to_json(v) for v in values]
        # Arrow itself widens ints to float64 (also inside lists) for the float kinds.
        return pa.array(values, type=self._arrow_type(kind))

    def _page_kind(
        self, name: str, kinds: set[str], list_kinds: set[str], where: str
    ) -> str | None:
        if not kinds:
            return None
        if kinds == {"list"}:
            if self.list_mode == "json" or list_kinds - set(_SCALAR_TYPES):
                return "json"
            if list_kinds <= {"int", "float"} and list_kinds:
                return "list:float" if "float" in list_kinds else "list:int"
            if len(list_kinds) == 1:
                return "list:" + next(iter(list_kinds))
            if not list_kinds:
                return "list:?"
            return "json"
        if kinds <= {"int", "float"}:
            return "float" if "float" in kinds else "int"
        if len(kinds) == 1:
            return next(iter(kinds))
        raise SourceError(
            f"field {name!r} mixes {' and '.join(sorted(kinds))} values on this page",
            source=where,
            fix=f"make field {name!r} one type in the source, or leave it out of the records",
        )

    def _merge(self, name: str, kind: str, where: str) -> str:
        previous = self.kinds.get(name)
        merged = kind
        if previous is None or previous == kind:
            merged = kind
        elif {previous, kind} == {"int", "float"}:
            merged = "float"
        elif {previous, kind} == {"list:int", "list:float"}:
            merged = "list:float"
        elif kind == "list:?" and previous.startswith("list:"):
            merged = previous
        elif previous == "list:?" and kind.startswith("list:"):
            merged = kind
        else:
            raise SourceError(
                f"field {name!r} changes type: {_describe(previous)} on earlier pages "
                f"(first at {self._first_seen[name]}), {_describe(kind)} on this page",
                source=where,
                fix=f"make field {name!r} one type in the source"
                + (
                    "; list_mode='json' stores every list as JSON text"
                    if "list" in kind + previous
                    else ""
                ),
            )
        if previous is None:
            self._first_seen[name] = where
        self.kinds[name] = merged
        return merged

    @staticmethod
    def _arrow_type(kind: str) -> pa.DataType:
        if kind == "json":
            return pa.string()
        if kind.startswith("list:"):
            element = kind.split(":", 1)[1]
            return pa.list_(_SCALAR_TYPES.get(element, pa.string()))
        return _SCALAR_TYPES[kind]


_ARROW_KINDS = {pa.bool_(): "bool", pa.int64(): "int", pa.float64(): "float", pa.string(): "string"}


def _arrow_kind(arrow_type: pa.DataType) -> str | None:
    """The column kind of an inferred Arrow type; ``None`` for all-null, ``""`` if unsupported."""
    if pa.types.is_null(arrow_type):
        return None
    if pa.types.is_list(arrow_type):
        element = arrow_type.value_type
        if pa.types.is_null(element):
            return "list:?"
        kind = _ARROW_KINDS.get(element)
        return f"list:{kind}" if kind else ""
    return _ARROW_KINDS.get(arrow_type, "")


def _describe(kind: str) -> str:
    if kind == "json":
        return "objects or mixed lists (JSON text)"
    if kind.startswith("list:"):
        element = kind.split(":", 1)[1]
        return "lists" if element == "?" else f"lists of {element}"
    return kind


def _to_json(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    )
