"""Statement splitting: semicolons inside strings, identifiers, comments and heredocs."""

from __future__ import annotations

import pytest

from dataproc_dagster.clickhouse.splitter import SplitError, split_statements


def sqls(text: str) -> list[str]:
    return [s.sql for s in split_statements(text)]


def test_splits_on_top_level_semicolons_and_drops_empty_pieces() -> None:
    assert sqls("SELECT 1;\n\n SELECT 2 ;;\nSELECT 3") == ["SELECT 1", "SELECT 2", "SELECT 3"]


def test_semicolons_inside_strings_and_identifiers_do_not_split() -> None:
    text = (
        "INSERT INTO t VALUES ('a;b', 'it''s; ok', 'esc\\'; still');\n"
        'SELECT `we;ird`, "quoted;ident" FROM t;'
    )
    assert sqls(text) == [
        "INSERT INTO t VALUES ('a;b', 'it''s; ok', 'esc\\'; still')",
        'SELECT `we;ird`, "quoted;ident" FROM t',
    ]


def test_comments_do_not_split_and_comment_only_pieces_are_not_statements() -> None:
    text = (
        "-- header; with a semicolon\n"
        "# hash comment; too\n"
        "CREATE TABLE t (a Int8) /* block; /* nested; */ still comment; */ ENGINE = Log;\n"
        "-- trailing comment only;\n"
        "/* only a comment */;\n"
    )
    statements = split_statements(text)
    assert len(statements) == 1
    assert statements[0].sql.startswith("CREATE TABLE t (a Int8) /* block;")
    assert statements[0].sql.endswith("ENGINE = Log")
    assert statements[0].line == 3


def test_heredoc_keeps_semicolons() -> None:
    text = "SELECT $$a;b$$;\nSELECT $tag$x;$$;y$tag$;"
    assert sqls(text) == ["SELECT $$a;b$$", "SELECT $tag$x;$$;y$tag$"]


def test_dollar_inside_a_name_opens_no_heredoc_and_hash_bang_is_a_comment() -> None:
    assert sqls("SELECT a$b$c; SELECT 1 #!shebang-style; comment\nSELECT 2") == [
        "SELECT a$b$c",
        "SELECT 1 #!shebang-style; comment\nSELECT 2",
    ]


def test_line_numbers_point_at_each_statement_start() -> None:
    text = "SELECT 1;\n\n-- note\nSELECT\n  2;\n"
    assert [s.line for s in split_statements(text)] == [1, 4]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1;\nSELECT 'open", "unterminated string starting at line 2"),
        ("SELECT `open", "unterminated quoted identifier starting at line 1"),
        ("SELECT 1 /* open /* inner */", "unterminated /* comment starting at line 1"),
        ("SELECT $$ open", "unterminated heredoc $$ starting at line 1"),
    ],
)
def test_unterminated_tokens_are_errors_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(SplitError, match=message.replace("$", r"\$").replace("*", r"\*")):
        split_statements(text)
