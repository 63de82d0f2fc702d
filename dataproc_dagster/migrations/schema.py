"""The tables and columns the applied migration files should have produced.

A light reader of DDL, enough for migration files: ``CREATE [OR REPLACE] TABLE`` with a column
list, ``DROP TABLE``, ``RENAME TABLE`` and ``ALTER TABLE`` clauses ``ADD/DROP/MODIFY/RENAME
COLUMN``. Anything else is ignored. Used by the asset check that compares the expectation with
``system.columns``; types are compared in ClickHouse's own canonical spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<qident>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# Words that end a column's type in a column definition.
_TYPE_END = {
    "DEFAULT", "MATERIALIZED", "ALIAS", "EPHEMERAL", "CODEC", "COMMENT", "TTL", "AFTER", "FIRST",
    "SETTINGS", "NULL", "NOT", "PRIMARY", "STATISTICS",
}  # fmt: skip
_NOT_COLUMNS = {"INDEX", "PROJECTION", "CONSTRAINT", "PRIMARY"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """The identifier without quotes."""
        if self.kind == "qident":
            return self.text[1:-1].replace(self.text[0] * 2, self.text[0]).replace("\\", "")
        return self.text


Columns = dict[str, str]  # column name -> type as written


def _tokens(sql: str) -> list[_Token]:
    return [
        _Token(m.lastgroup or "", m.group(), m.start(), m.end())
        for m in _TOKEN.finditer(sql)
        if m.lastgroup not in ("ws", "comment")
    ]


def expected_tables(statements: Iterable[str], default_database: str) -> dict[str, Columns | None]:
    """Replay DDL statements; return ``{"db.table": {column: type}}``.

    A table created without a column list (``AS other``, ``AS SELECT``) maps to ``None``: it
    should exist, its columns are not known.
    """
    tables: dict[str, Columns | None] = {}
    for sql in statements:
        tokens = _tokens(sql)
        words = [t.upper for t in tokens[:4]]
        if words[:1] == ["CREATE"]:
            _create(sql, tokens, tables, default_database)
        elif words[:2] == ["DROP", "TABLE"]:
            pos = _skip_words(tokens, 2, "IF", "EXISTS")
            name, _ = _table_name(tokens, pos, default_database)
            tables.pop(name, None)
        elif words[:2] == ["RENAME", "TABLE"]:
            _rename_tables(tokens, tables, default_database)
        elif words[:2] == ["ALTER", "TABLE"]:
            _alter(sql, tokens, tables, default_database)
    return tables


def _skip_words(tokens: list[_Token], pos: int, *words: str) -> int:
    for word in words:
        if pos < len(tokens) and tokens[pos].upper == word:
            pos += 1
    return pos


def _table_name(tokens: list[_Token], pos: int, default_database: str) -> tuple[str, int]:
    first = tokens[pos].name
    if pos + 2 < len(tokens) and tokens[pos + 1].text == ".":
        return f"{first}.{tokens[pos + 2].name}", pos + 3
    return f"{default_database}.{first}", pos + 1


def _skip_on_cluster(tokens: list[_Token], pos: int) -> int:
    if pos + 2 < len(tokens) and tokens[pos].upper == "ON" and tokens[pos + 1].upper == "CLUSTER":
        return pos + 3
    return pos


def _create(sql: str, tokens: list[_Token], tables: dict[str, Columns | None], db: str) -> None:
    pos = _skip_words(tokens, 1, "OR", "REPLACE")
    if pos >= len(tokens) or tokens[pos].upper != "TABLE":
        return  # views, dictionaries, databases, functions
    pos = _skip_words(tokens, pos + 1, "IF", "NOT", "EXISTS")
    name, pos = _table_name(tokens, pos, db)
    pos = _skip_on_cluster(tokens, pos)
    if pos < len(tokens) and tokens[pos].text == "(":
        columns: Columns = {}
        for element in _split_top_level(tokens, pos):
            if element and element[0].upper not in _NOT_COLUMNS:
                column, type_ = _column(sql, element)
                columns[column] = type_
        tables[name] = columns
    else:
        tables[name] = None


def _split_top_level(tokens: list[_Token], open_pos: int) -> list[list[_Token]]:
    """The comma-separated elements inside the parenthesis opening at ``open_pos``."""
    depth = 0
    elements: list[list[_Token]] = [[]]
    for token in tokens[open_pos:]:
        if token.text == "(":
            depth += 1
            if depth == 1:
                continue
        elif token.text == ")":
            depth -= 1
            if depth == 0:
                break
        if depth == 1 and token.text == ",":
            elements.append([])
        else:
            elements[-1].append(token)
    return [e for e in elements if e]


def _column(sql: str, element: list[_Token]) -> tuple[str, str]:
    """Name and type of a column definition (tokens starting at the name)."""
    depth = 0
    end = len(element)
    for index, token in enumerate(element[1:], start=1):
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif depth == 0 and token.upper in _TYPE_END:
            end = index
            break
    if end <= 1:
        return element[0].name, ""
    return element[0].name, sql[element[1].start : element[end - 1].end]


def _rename_tables(tokens: list[_Token], tables: dict[str, Columns | None], db: str) -> None:
    pos = 2
    while pos < len(tokens):
        old, pos = _table_name(tokens, pos, db)
        if pos >= len(tokens) or tokens[pos].upper != "TO":
            return
        new, pos = _table_name(tokens, pos + 1, db)
        if old in tables:
            tables[new] = tables.pop(old)
        if pos < len(tokens) and tokens[pos].text == ",":
            pos += 1
        else:
            return


def _alter(sql: str, tokens: list[_Token], tables: dict[str, Columns | None], db: str) -> None:
    name, pos = _table_name(tokens, 2, db)
    pos = _skip_on_cluster(tokens, pos)
    columns = tables.get(name)
    if columns is None:
        return
    # Clauses are separated by top-level commas.
    clauses: list[list[_Token]] = [[]]
    depth = 0
    for token in tokens[pos:]:
        depth += token.text == "("
        depth -= token.text == ")"
        if depth == 0 and token.text == ",":
            clauses.append([])
        else:
            clauses[-1].append(token)
    for clause in clauses:
        words = [t.upper for t in clause[:2]]
        if len(words) < 2 or words[1] != "COLUMN":
            continue
        at = _skip_words(clause, 2, "IF", "NOT", "EXISTS")
        if at >= len(clause):
            continue
        if words[0] in ("ADD", "MODIFY"):
            column, type_ = _column(sql, clause[at:])
            if type_ or words[0] == "ADD":
                columns[column] = type_ or columns.get(column, "")
        elif words[0] == "DROP":
            columns.pop(clause[at].name, None)
        elif words[0] == "RENAME" and at + 2 < len(clause) and clause[at + 1].upper == "TO":
            old, new = clause[at].name, clause[at + 2].name
            if old in columns:
                columns[new] = columns.pop(old)


class ProblemKind(StrEnum):
    """What is wrong with a table the migrations create."""

    MISSING_TABLE = "missing_table"
    MISSING_COLUMN = "missing_column"
    OTHER_TYPE = "other_type"
    UNKNOWN_COLUMN = "unknown_column"  # in the table, not in the migrations


@dataclass(frozen=True)
class SchemaProblem:
    """One difference between the migrations' expectation and the database.

    Attributes:
        table: ``db.table``.
        kind: What is wrong.
        column: The column concerned (empty for a missing table).
        actual: The column's type in the database (for ``other_type``).
        expected: The type the migrations give it (for ``other_type``).
    """

    table: str
    kind: ProblemKind
    column: str = ""
    actual: str = ""
    expected: str = ""

    def __str__(self) -> str:
        if self.kind == ProblemKind.MISSING_TABLE:
            return f"table {self.table} is missing"
        if self.kind == ProblemKind.MISSING_COLUMN:
            return f"{self.table}: column {self.column} is missing"
        if self.kind == ProblemKind.OTHER_TYPE:
            return (
                f"{self.table}: column {self.column} is {self.actual}, the migrations say "
                f"{self.expected}"
            )
        return f"{self.table}: column {self.column} is not in the migrations"


def schema_problems(client: Any, expected: dict[str, Columns | None]) -> list[SchemaProblem]:
    """Compare ``expected`` with ``system.columns``: each missing table or column, each column
    of another type and each column the migrations do not know."""
    problems: list[SchemaProblem] = []
    spelled: dict[str, str] = {}

    def canonical(type_: str) -> str:
        if type_ not in spelled:
            spelled[type_] = _canonical(client, type_)
        return spelled[type_]

    for qualified, columns in sorted(expected.items()):
        database, table = qualified.split(".", 1)
        rows = client.query(
            "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s "
            "ORDER BY position",
            parameters={"db": database, "t": table},
        ).result_rows
        exists = (
            rows
            or client.query(
                "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
                parameters={"db": database, "t": table},
            ).result_rows[0][0]
        )
        if not exists:
            problems.append(SchemaProblem(qualified, ProblemKind.MISSING_TABLE))
            continue
        if columns is None:
            continue
        actual = {str(name): str(type_) for name, type_ in rows}
        for name, type_ in columns.items():
            if name not in actual:
                problems.append(SchemaProblem(qualified, ProblemKind.MISSING_COLUMN, name))
            elif type_ and canonical(type_) != canonical(actual[name]):
                problems.append(
                    SchemaProblem(qualified, ProblemKind.OTHER_TYPE, name, actual[name], type_)
                )
        for name in actual:
            if name not in columns:
                problems.append(SchemaProblem(qualified, ProblemKind.UNKNOWN_COLUMN, name))
    return problems


def schema_differences(client: Any, expected: dict[str, Columns | None]) -> list[str]:
    """:func:`schema_problems` as one line each."""
    return [str(p) for p in schema_problems(client, expected)]


def _canonical(client: Any, type_: str) -> str:
    """ClickHouse's own spelling of a type (``INT`` -> ``Int32``); whitespace-free on failure."""
    try:
        rows = client.query(
            "SELECT toTypeName(defaultValueOfTypeName(%(t)s))", parameters={"t": type_}
        ).result_rows
        return str(rows[0][0])
    except Exception:  # a type this function cannot build (e.g. Object): compare the text
        return re.sub(r"\s+", "", type_)
