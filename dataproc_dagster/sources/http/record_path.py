"""Picking the list of records out of a decoded JSON page (``records_path``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dataproc_dagster.core.errors import SourceError


def select_records(payload: Any, path: str | None, *, where: str) -> list[Any]:
    """Return the list of records in a decoded JSON page.

    Args:
        payload: The decoded JSON body.
        path: Dotted path to the list (``data.items``); ``None`` picks a top-level list or the
            only list-valued key of a top-level object.
        where: The page URL (secrets masked), for messages.

    Raises:
        SourceError: When the path does not exist, does not hold a list, or the choice is
            ambiguous (the message lists the candidate keys).
    """
    if path:
        node = payload
        walked: list[str] = []
        for part in path.split("."):
            walked.append(part)
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                keys = sorted(node) if isinstance(node, Mapping) else []
                raise SourceError(
                    f"record path {path!r} does not exist in the response: no key "
                    f"{'.'.join(walked)!r} (keys there: {', '.join(map(str, keys)) or 'none'})",
                    source=where,
                    fix="set records_path to the dotted path of the list of records",
                )
        if node is None:
            return []
        if not isinstance(node, list):
            raise SourceError(
                f"record path {path!r} holds a {json_type(node)}, not a list of records",
                source=where,
                fix="set records_path to the dotted path of the list of records",
            )
        return node
    if isinstance(payload, list):
        return payload
    if isinstance(payload, Mapping):
        candidates = [k for k, v in payload.items() if isinstance(v, list)]
        if len(candidates) == 1:
            return payload[candidates[0]]
        if not candidates:
            raise SourceError(
                "the response holds no list of records at the top level "
                f"(keys: {', '.join(map(str, payload)) or 'none'})",
                source=where,
                fix="set records_path to the dotted path of the list of records, e.g. data.items",
            )
        raise SourceError(
            "the response holds several lists; cannot tell which holds the records "
            f"(candidate keys: {', '.join(candidates)})",
            source=where,
            fix=f"set records_path to one of: {', '.join(candidates)}",
        )
    raise SourceError(
        f"the response is a JSON {json_type(payload)}, not an object or a list of records",
        source=where,
        fix="point the extractor at an endpoint that returns JSON records",
    )


def json_type(value: Any) -> str:
    """The JSON name of a value's type (``null``, ``number``, ``object``...) for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"
