"""Split a SQL file into statements, understanding quotes, comments and heredocs.

A ClickHouse server accepts one statement per request, while chDB accepts several: the runner
therefore always splits, so both engines run the same statements one at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_HEREDOC_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Statement:
    """One statement of a file.

    Attributes:
        sql: The statement without its trailing semicolon.
        line: The 1-based line of the file where it starts.
    """

    sql: str
    line: int


class SplitError(ValueError):
    """The text has an unterminated string, identifier, comment or heredoc."""


def split_statements(text: str) -> list[Statement]:
    """Split ``text`` on the semicolons that are outside strings, identifiers and comments.

    Comments stay inside a statement's text; a piece holding only comments and blanks is not a
    statement.

    Raises:
        SplitError: On an unterminated quote, block comment or heredoc, naming its line.
    """
    statements: list[Statement] = []
    has_code = False  # the piece holds something besides comments and blanks
    code_start = -1
    i = 0
    n = len(text)

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def flush(end: int) -> None:
        nonlocal has_code, code_start
        if has_code:
            sql = text[code_start:end].strip()
            statements.append(Statement(sql=sql, line=line_of(code_start)))
        has_code = False
        code_start = -1

    def mark_code(pos: int) -> None:
        nonlocal has_code, code_start
        if not has_code:
            has_code = True
            code_start = pos

    while i < n:
        ch = text[i]
        if ch in "'\"`":
            mark_code(i)
            i = _skip_quoted(text, i, ch, line_of)
        elif text.startswith("--", i) or (
            ch == "#" and text[i + 1 : i + 2] in ("", " ", "!", "\n")
        ):
            # ClickHouse reads "# " and "#!" as comments, like "--".
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
        elif ch == "/" and text.startswith("/*", i):
            i = _skip_block_comment(text, i, line_of)
        elif ch == "$" and not _in_word(text, i) and (match := _HEREDOC_TAG.match(text, i)):
            mark_code(i)
            tag = match.group(0)
            end = text.find(tag, match.end())
            if end == -1:
                raise SplitError(f"unterminated heredoc {tag} starting at line {line_of(i)}")
            i = end + len(tag)
        elif ch == ";":
            flush(i)
            i += 1
        else:
            if not ch.isspace():
                mark_code(i)
            i += 1
    flush(n)
    return statements


def _skip_quoted(text: str, pos: int, quote: str, line_of: Callable[[int], int]) -> int:
    """Return the index after the quoted token opening at ``pos``."""
    i = pos + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and text[i + 1] == quote:  # a doubled quote stands for itself
                i += 2
                continue
            return i + 1
        i += 1
    kind = {"'": "string", '"': "quoted identifier", "`": "quoted identifier"}[quote]
    raise SplitError(f"unterminated {kind} starting at line {line_of(pos)}")


def _skip_block_comment(text: str, pos: int, line_of: Callable[[int], int]) -> int:
    """Return the index after the (possibly nested) ``/* */`` comment opening at ``pos``."""
    depth = 0
    i = pos
    n = len(text)
    while i < n:
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SplitError(f"unterminated /* comment starting at line {line_of(pos)}")


def _in_word(text: str, pos: int) -> bool:
    """True when ``pos`` continues an identifier (``a$b``), where ``$`` opens no heredoc."""
    return pos > 0 and (text[pos - 1].isalnum() or text[pos - 1] in "_$")
