"""Discovery and validation of the migration files ``NNNN_name.up.sql`` / ``NNNN_name.down.sql``.

Every problem of the folder is found before anything runs, and reported in one error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from dataproc_dagster.clickhouse.splitter import SplitError, Statement, split_statements
from dataproc_dagster.clickhouse.sql import quote_identifier
from dataproc_dagster.migrations.errors import MigrationFileError

FILE_NAME = re.compile(
    r"^(?P<version>\d{4,})_(?P<name>[A-Za-z0-9][A-Za-z0-9_]*)\.(?P<kind>up|down)\.sql$"
)
_PLACEHOLDER = re.compile(r"\{(cluster|database)\}")
_FIX_NAMES = (
    "name files NNNN_name.up.sql (and optionally NNNN_name.down.sql), e.g. 0003_add_index.up.sql"
)


@dataclass(frozen=True)
class MigrationFile:
    """One migration: its up file and optional down file.

    Attributes:
        version: The number in the file name.
        name: The words after the number.
        up_path: The ``.up.sql`` file.
        down_path: The ``.down.sql`` file, if any.
        checksum: MD5 of the raw bytes of the up file (before placeholders are filled).
        up: The statements of the up file.
        down: The statements of the down file (empty without one).
    """

    version: int
    name: str
    up_path: Path
    down_path: Path | None
    checksum: str
    up: tuple[Statement, ...]
    down: tuple[Statement, ...]

    @property
    def label(self) -> str:
        """``NNNN_name`` as in the file name."""
        return self.up_path.name.removesuffix(".up.sql")


def discover_migrations(folder: Path) -> list[MigrationFile]:
    """Read and validate the migration files of ``folder``, in version order.

    Files that do not end in ``.sql`` (a README, say) are ignored.

    Raises:
        MigrationFileError: Listing every malformed name, duplicate version, gap in the
            numbering, down file without an up file, empty or unparsable file.
    """
    if not folder.is_dir():
        raise MigrationFileError(
            "the migrations folder does not exist",
            source=str(folder),
            fix="create it, or point MIGRATIONS_DIR at the folder holding NNNN_name.up.sql files",
        )
    ups: dict[int, list[Path]] = {}
    downs: dict[int, list[Path]] = {}
    problems: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or not path.name.endswith(".sql"):
            continue
        match = FILE_NAME.match(path.name)
        if match is None:
            problems.append(f"{path.name}: malformed file name")
            continue
        target = ups if match["kind"] == "up" else downs
        target.setdefault(int(match["version"]), []).append(path)

    for version, paths in sorted(ups.items()):
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            problems.append(f"duplicate version {version:04d}: {names}")
    for version, paths in sorted(downs.items()):
        up_labels = {p.name.removesuffix(".up.sql") for p in ups.get(version, [])}
        for path in paths:
            if path.name.removesuffix(".down.sql") not in up_labels:
                problems.append(f"{path.name}: down file with no matching up file")
        if len(paths) > 1:
            problems.append(f"duplicate down files for version {version:04d}")
    versions = sorted(ups)
    expected = list(range(1, len(versions) + 1))
    if versions and versions != expected:
        missing = sorted(set(range(1, versions[-1] + 1)) - set(versions))
        if missing:
            shown = ", ".join(f"{v:04d}" for v in missing)
            problems.append(f"gap in the numbering: no up file for version {shown}")
    if problems:
        raise MigrationFileError(
            "invalid migration files: " + "; ".join(problems),
            source=str(folder),
            fix=f"{_FIX_NAMES}; number them 0001, 0002, ... without gaps",
        )

    migrations: list[MigrationFile] = []
    for version in versions:
        up_path = ups[version][0]
        down_path = next(iter(downs.get(version, [])), None)
        raw = up_path.read_bytes()
        up = _parse(up_path, raw, problems)
        down = _parse(down_path, down_path.read_bytes(), problems) if down_path else ()
        match = FILE_NAME.match(up_path.name)
        assert match is not None  # checked above
        migrations.append(
            MigrationFile(
                version=version,
                name=match["name"],
                up_path=up_path,
                down_path=down_path,
                checksum=hashlib.md5(raw).hexdigest(),
                up=up,
                down=down,
            )
        )
    if problems:
        raise MigrationFileError(
            "invalid migration files: " + "; ".join(problems),
            source=str(folder),
            fix="give every file at least one statement and close every quote and comment",
        )
    return migrations


def _parse(path: Path, raw: bytes, problems: list[str]) -> tuple[Statement, ...]:
    try:
        statements = split_statements(raw.decode("utf-8"))
    except UnicodeDecodeError:
        problems.append(f"{path.name}: not UTF-8 text")
        return ()
    except SplitError as exc:
        problems.append(f"{path.name}: {exc}")
        return ()
    if not statements:
        problems.append(f"{path.name}: empty file (no statement)")
    return tuple(statements)


def render(sql: str, *, database: str, cluster: str = "") -> str:
    """Fill ``{database}`` (quoted) and ``{cluster}`` (``ON CLUSTER name``, or nothing)."""
    on_cluster = f"ON CLUSTER {quote_identifier(cluster)}" if cluster else ""

    def fill(match: re.Match[str]) -> str:
        return quote_identifier(database) if match[1] == "database" else on_cluster

    return _PLACEHOLDER.sub(fill, sql)
