"""Flattening nested JSON objects into ``parent_child`` columns, in Python and in Arrow.

Each column remembers the source path that gives it, so that two fields flattening to one
column name are an error rather than one silently overwriting the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

SEP = "_"
# Joins the keys of a source path in the column-to-path map: a character no JSON key of a real
# API holds, so that ``{"a.b": 1}`` and ``{"a": {"b": 1}}`` keep distinct paths.
_PATH_SEP = "\x1f"


class FlattenError(Exception):
    """Internal: two source paths give one column name, or a key is empty."""

    def __init__(self, name: str, paths: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name = name
        self.paths = paths


def render_path(path: str) -> str:
    """A source path (keys joined by ``_PATH_SEP``) as ``a.b``; odd keys as ``["a.b"]``."""
    text = ""
    for key in path.split(_PATH_SEP):
        if key and "." not in key and "[" not in key and '"' not in key:
            text += f".{key}" if text else key
        else:
            text += f"[{json.dumps(key, ensure_ascii=False)}]"
    return text


def flatten_record(
    record: Mapping[str, Any],
    max_depth: int,
    *,
    paths: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Flatten nested objects into ``parent_child`` keys down to ``max_depth`` levels.

    Objects deeper than ``max_depth`` are kept as JSON strings. ``max_depth=0`` keeps every
    nested object as JSON.

    Args:
        record: One decoded JSON object.
        max_depth: Levels of nested objects flattened.
        paths: Column name -> source path of the columns met so far (updated); a column whose
            name another path already gave raises.

    Raises:
        FlattenError: Two source paths give one column name, or a key on the way is empty.
    """
    out: dict[str, Any] = {}
    _flatten_into(out, record, "", "", max_depth, {} if paths is None else paths)
    return out


def _flatten_into(
    out: dict[str, Any],
    record: Mapping[str, Any],
    prefix: str,
    source: str,
    depth: int,
    paths: dict[str, str],
) -> None:
    for key, value in record.items():
        if prefix:
            name = f"{prefix}{SEP}{key}"
            path = f"{source}{_PATH_SEP}{key}"
        else:
            name = path = str(key)
        if not key:
            raise FlattenError("", (path,))
        # Decoded JSON holds plain dicts; an exact type check is much cheaper than an ABC one.
        if depth > 0 and type(value) is dict and value:
            _flatten_into(out, value, name, path, depth - 1, paths)
        else:
            known = paths.setdefault(name, path)
            if known != path:
                raise FlattenError(name, (known, path))
            out[name] = value


def flatten_struct(
    column: pa.ChunkedArray,
    prefix: str,
    source: str,
    depth: int,
    out: list[tuple[str, pa.ChunkedArray]],
    sources: list[str],
) -> bool:
    """Append the leaf columns of struct ``column`` and their source paths to ``out`` /
    ``sources``; False when the Arrow path cannot do it."""
    fields = list(column.type)
    if not fields:
        return False
    for field, child in zip(fields, column.flatten(), strict=True):
        if "." in field.name or not field.name:
            return False
        if prefix:
            name = f"{prefix}{SEP}{field.name}"
            path = f"{source}{_PATH_SEP}{field.name}"
        else:
            name = path = field.name
        if pa.types.is_struct(child.type):
            # Deeper than max_depth the Python path keeps the object as JSON text.
            if depth <= 0 or not flatten_struct(child, name, path, depth - 1, out, sources):
                return False
        else:
            out.append((name, child))
            sources.append(path)
    return True
