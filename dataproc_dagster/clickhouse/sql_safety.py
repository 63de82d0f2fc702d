"""Checks for everything from configuration that ends up in SQL text.

Names (tables, databases, columns) are always quoted with :func:`quote_identifier`; they only
need to be plain text. Expressions (``partition_by``, an ELT step's table engine) cannot be
quoted, so each must be exactly one ClickHouse expression: :func:`check_expression` applies a
strict pure-Python grammar before anything connects (at definition time for pipeline code,
before the step starts for run config) and :func:`check_expression_with_engine` asks
ClickHouse's own parser. :func:`check_single_statement` guards commands built from
configuration: the embedded engine would run several statements given in one call.
"""

from __future__ import annotations

import re
from typing import Any

from dataproc_dagster.clickhouse.splitter import SplitError, split_statements
from dataproc_dagster.core.errors import ConfigError

MAX_IDENTIFIER_CHARS = 200
MAX_EXPRESSION_CHARS = 1000

# Words that start a clause or a statement: never part of one expression of a table definition.
FORBIDDEN_WORDS = frozenset(
    {
        "SELECT", "FROM", "WITH", "UNION", "EXCEPT", "INTERSECT", "SETTINGS", "FORMAT",
        "INTO", "OUTFILE", "INSERT", "DROP", "ALTER", "CREATE", "ATTACH", "DETACH", "RENAME",
        "TRUNCATE", "DELETE", "UPDATE", "GRANT", "REVOKE", "SYSTEM", "KILL", "OPTIMIZE",
        "EXCHANGE", "USE", "SET", "EXPLAIN", "DESCRIBE", "SHOW", "WHERE", "HAVING", "LIMIT",
        "JOIN",
    }
)  # fmt: skip
# Functions that read files, other tables or other systems (table functions and their scalar
# relatives): a table definition never needs them.
FORBIDDEN_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "file", "url", "urlCluster", "remote", "remoteSecure", "cluster", "clusterAllReplicas",
        "s3", "s3Cluster", "gcs", "oss", "cosn", "hdfs", "hdfsCluster", "azureBlobStorage",
        "azureBlobStorageCluster", "mysql", "postgresql", "sqlite", "mongodb", "redis", "jdbc",
        "odbc", "executable", "input", "merge", "mergeTreeIndex", "view", "viewIfPermitted",
        "dictionary", "deltaLake", "iceberg", "hudi", "generateRandom", "numbers", "zeros",
        "joinGet", "joinGetOrNull", "dictGet", "getSetting", "currentUser", "fuzzQuery",
        "loop", "null", "values", "format", "prometheusQuery", "timeSeriesData",
    )
)  # fmt: skip
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check_identifier(
    value: Any, *, option: str, source: str | None = None, kind: str = "column"
) -> str:
    """Return ``value`` when it can be a table, database or column name.

    Names are always quoted where they are used. Table and database names (``kind`` ``table``)
    must still be plain: letters, digits and ``_``, not starting with a digit. Column names
    (``kind`` ``column``) come from the data and may hold blanks or other characters, but not
    quotes, backslashes, ``;``, comment starts or control characters, which no real column
    needs and which only serve to break out of the quoting.

    Raises:
        ConfigError: Naming ``option``, the value and the fix.
    """
    text = value if isinstance(value, str) else ""
    problem = ""
    if not isinstance(value, str) or not text.strip():
        problem = "is empty"
    elif len(text) > MAX_IDENTIFIER_CHARS:
        problem = f"is longer than {MAX_IDENTIFIER_CHARS} characters"
    elif kind == "table" and not _PLAIN_NAME.fullmatch(text):
        problem = "may hold only letters, digits and _ (and not start with a digit)"
    elif text != text.strip():
        problem = "has leading or trailing blanks"
    elif _CONTROL.search(text) or "\n" in text or "\t" in text:
        problem = "holds control characters"
    elif any(mark in text for mark in ("`", "'", '"', "\\", ";", "--", "/*", "#")):
        problem = "holds a quote, backslash, ';' or a comment start"
    if problem:
        example = "events" if kind == "table" else "order_id"
        raise ConfigError(
            f"{option} {problem} (got {_show(value)})",
            source=source,
            fix=f"set {option} to a plain name such as {example}",
        )
    return text


def check_expression(value: Any, *, option: str, source: str | None = None) -> str:
    """Return ``value`` when it is exactly one plain ClickHouse expression.

    Refused: ``;``, comments (``--``, ``/*``, ``#``), clause or statement words (``SELECT``,
    ``SETTINGS``, ``FORMAT``, ``INTO OUTFILE``, ...), sub-queries, table functions and
    functions that read other tables or files, a top-level comma, unbalanced brackets or
    quotes, a top-level alias, control characters. Quoted strings and identifiers may hold anything.

    Raises:
        ConfigError: Naming ``option``, the value, what is wrong and the fix.
    """
    problem = _expression_problem(value) if isinstance(value, str) else "is not text"
    if problem:
        raise ConfigError(
            f"{option} must be one ClickHouse expression, but it {problem} (got {_show(value)})",
            source=source,
            fix=f"set {option} to a single expression over the table's columns, such as "
            "toYYYYMM(created_at) or (country, toDate(ts)); anything else belongs in a migration",
        )
    return value


def check_expression_with_engine(
    client: Any, value: str, *, option: str, source: str | None = None
) -> str:
    """Check ``value`` with :func:`check_expression`, then with ClickHouse's own parser.

    The text travels as a bound parameter of ``formatQuery``, so it is parsed and never run.

    Raises:
        ConfigError: When either check refuses it.
    """
    check_expression(value, option=option, source=source)
    try:
        rows = client.query(
            "SELECT formatQuerySingleLine('SELECT ' || {e:String})", parameters={"e": value}
        ).result_rows
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{option} is not a valid ClickHouse expression (got {_show(value)}): {reason}",
            source=source,
            fix=f"correct {option}; try it alone in `SELECT <expression> FROM <table>`",
        ) from None
    formatted = str(rows[0][0]) if rows else ""
    inner = formatted[len("SELECT ") :] if formatted.upper().startswith("SELECT ") else ""
    problem = _expression_problem(inner) if inner else "is not an expression"
    if problem:
        raise ConfigError(
            f"{option} must be one ClickHouse expression, but as ClickHouse reads it it "
            f"{problem} (got {_show(value)})",
            source=source,
            fix=f"set {option} to a single expression over the table's columns",
        )
    return value


def check_single_statement(sql: str, *, source: str | None = None) -> str:
    """Return ``sql`` when it holds at most one statement (a trailing ``;`` is allowed).

    Raises:
        ConfigError: When it holds several statements or an unterminated quote.
    """
    try:
        count = len(split_statements(sql))
    except SplitError as exc:
        raise ConfigError(
            f"refused SQL with an unterminated quote or comment: {exc}",
            source=source,
            fix="send one complete statement per command",
        ) from None
    if count > 1:
        raise ConfigError(
            f"refused a command holding {count} statements; one command runs one statement",
            source=source,
            fix="run the statements one at a time (a migration file may hold several)",
        )
    return sql


def _expression_problem(text: str) -> str:
    """What makes ``text`` more or less than one expression; empty when it is fine."""
    if not text.strip():
        return "is empty"
    if len(text) > MAX_EXPRESSION_CHARS:
        return f"is longer than {MAX_EXPRESSION_CHARS} characters"
    if _CONTROL.search(text):
        return "holds control characters"
    closing = {"(": ")", "[": "]"}
    stack: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'`\"":
            end = _end_of_quoted(text, i)
            if end < 0:
                return f"has an unterminated {char} quote"
            i = end
            continue
        if char == ";":
            return "holds ';' (a second statement)"
        if text.startswith(("--", "/*"), i) or char == "#":
            return "holds a comment"
        if char in "{}$\\":
            return f"holds {char!r}"
        if char in closing:
            stack.append(closing[char])
        elif char in ")]":
            if not stack or stack.pop() != char:
                return "has unbalanced brackets"
        elif char == "," and not stack:
            return "holds a top-level comma (several expressions: wrap them in a tuple)"
        match = _WORD.match(text, i) if char.isalpha() or char == "_" else None
        if match is not None:
            word = match.group(0)
            if word.upper() in FORBIDDEN_WORDS:
                return f"holds the keyword {word.upper()}"
            if word.upper() == "AS" and not stack:
                return "holds an alias (AS)"
            rest = text[match.end() :].lstrip()
            if rest.startswith("(") and word.lower() in FORBIDDEN_FUNCTIONS:
                return f"calls {word}(), which reads outside the table"
            i = match.end()
            continue
        i += 1
    if stack:
        return "has unbalanced brackets"
    return ""


def _end_of_quoted(text: str, start: int) -> int:
    """Index just after the quoted part starting at ``start``; -1 when unterminated."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == quote:
            if i + 1 < len(text) and text[i + 1] == quote:  # doubled quote
                i += 2
                continue
            return i + 1
        i += 1
    return -1


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "...'"
