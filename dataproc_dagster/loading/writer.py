"""Atomic, retry-safe writes of a :class:`ChunkSet` into a ClickHouse table.

Every mode first loads all chunks into a staging table shaped like the target, then publishes
them in one ClickHouse operation, so a failure at any chunk leaves the target as it was:

- ``append``: ``ATTACH PARTITION ... FROM`` staging (parts are hard-linked, nothing is copied);
- ``replace``: ``EXCHANGE TABLES`` target and staging;
- ``replace_partitions``: ``REPLACE PARTITION ... FROM`` staging, for the partitions in the data;
- ``upsert``: like ``append`` into a ``ReplacingMergeTree`` keyed on the key columns, with a
  version column, so the latest row per key wins (read with ``FINAL``).

A ledger table records each published dataset, so a step that is retried after publishing
does not load the same data twice. The staging table is dropped (``SYNC``) in every case.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from dataproc_dagster.chunks import ChunkSet
from dataproc_dagster.errors import ConfigError, DataprocError, LoadError, SchemaError
from dataproc_dagster.loading.schema_check import (
    DRIFT_POLICIES,
    check_chunk,
    check_file,
    plan_drift,
)
from dataproc_dagster.loading.tables import (
    TableInfo,
    active_partitions,
    create_table_sql,
    describe_table,
    drop_table,
)
from dataproc_dagster.resources.clickhouse import qualified_name, quote_identifier, scalar

WriteMode = Literal["append", "replace", "replace_partitions", "upsert"]
WRITE_MODES: tuple[str, ...] = ("append", "replace", "replace_partitions", "upsert")
VERSION_COLUMN = "_version"
LEDGER_TABLE = "_dataproc_loads"


@dataclass(frozen=True)
class LoadSpec:
    """How to write into the target table.

    Attributes:
        database: Target database.
        table: Target table.
        mode: One of :data:`WRITE_MODES`.
        order_by: Sorting key used when the loader creates the table.
        partition_by: Partition expression used when the loader creates the table
            (required for ``replace_partitions``).
        key_columns: Key of ``upsert`` (also its sorting key).
        version_column: Column deciding the latest row in ``upsert``; when ``None`` the loader
            adds ``_version`` (load time in ns).
        schema_drift: ``freeze`` (fail), ``evolve`` (add columns) or ``discard`` (drop them).
        create_table: Create the table from the data's schema when it is missing.
        allow_empty_replace: Let ``replace`` with no rows empty the table (otherwise skipped).
        optimize_after_upsert: Run ``OPTIMIZE TABLE ... FINAL`` after an upsert.
    """

    database: str
    table: str
    mode: str = "append"
    order_by: tuple[str, ...] = ()
    partition_by: str | None = None
    key_columns: tuple[str, ...] = ()
    version_column: str | None = None
    schema_drift: str = "freeze"
    create_table: bool = True
    allow_empty_replace: bool = False
    optimize_after_upsert: bool = False

    def validate(self) -> None:
        """Check the combination of options.

        Raises:
            ConfigError: Naming the option and the accepted values.
        """
        where = f"{self.database}.{self.table}"
        if self.mode not in WRITE_MODES:
            raise ConfigError(
                f"unknown write mode {self.mode!r}",
                source=where,
                fix=f"use one of {', '.join(WRITE_MODES)}",
            )
        if self.schema_drift not in DRIFT_POLICIES:
            raise ConfigError(
                f"unknown schema_drift policy {self.schema_drift!r}",
                source=where,
                fix=f"use one of {', '.join(DRIFT_POLICIES)}",
            )
        if self.mode == "upsert" and not self.key_columns:
            raise ConfigError(
                "write mode 'upsert' needs key_columns",
                source=where,
                fix="pass key_columns=('id',) naming the columns that identify a row",
            )
        if not self.table or not self.database:
            raise ConfigError("the target table needs a database and a name", source=where)

    @property
    def qualified(self) -> str:
        """Quoted ``database.table``."""
        return qualified_name(self.table, self.database)


@dataclass
class LoadResult:
    """What a load did."""

    rows: int = 0
    chunks: int = 0
    created: bool = False
    skipped: str | None = None
    columns_added: list[str] = field(default_factory=list)
    columns_discarded: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)


def staging_name(spec: LoadSpec, dataset_id: str) -> str:
    """A staging table name that is the same for every retry of the same load."""
    digest = hashlib.sha1(f"{dataset_id}|{spec.database}.{spec.table}".encode()).hexdigest()[:12]
    return f"_stage_{spec.table}_{digest}"[:200]


def _ensure_ledger(client: Client, database: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {qualified_name(LEDGER_TABLE, database)} ("
        "target String, dataset_id String, mode String, rows UInt64, "
        "loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY (target, dataset_id)"
    )


def already_loaded(client: Client, spec: LoadSpec, dataset_id: str) -> bool:
    """Whether this dataset was already published into this table."""
    _ensure_ledger(client, spec.database)
    found = scalar(
        client,
        f"SELECT count() FROM {qualified_name(LEDGER_TABLE, spec.database)} "
        "WHERE target = {t:String} AND dataset_id = {d:String}",
        {"t": spec.table, "d": dataset_id},
    )
    return found > 0


def _record(client: Client, spec: LoadSpec, dataset_id: str, rows: int) -> None:
    client.insert(
        f"{LEDGER_TABLE}",
        [[spec.table, dataset_id, spec.mode, rows]],
        column_names=["target", "dataset_id", "mode", "rows"],
        database=spec.database,
    )


def _create_target(client: Client, spec: LoadSpec, chunks: ChunkSet) -> None:
    schema = chunks.schema
    assert schema is not None
    extra: list[str] = []
    engine = "MergeTree"
    order_by: Sequence[str] = spec.order_by
    if spec.mode == "upsert":
        missing = [k for k in spec.key_columns if k not in schema.names]
        if missing:
            raise SchemaError(
                f"upsert key columns {missing} are not in the data (columns: {schema.names})",
                source=f"{spec.database}.{spec.table}",
                fix="name existing columns in key_columns",
            )
        version = spec.version_column or VERSION_COLUMN
        if spec.version_column is None:
            extra.append(f"{quote_identifier(VERSION_COLUMN)} UInt64")
        engine = f"ReplacingMergeTree({quote_identifier(version)})"
        order_by = spec.key_columns
    if spec.mode == "replace_partitions" and not spec.partition_by:
        raise ConfigError(
            "write mode 'replace_partitions' needs partition_by to create the table",
            source=f"{spec.database}.{spec.table}",
            fix="pass partition_by='toYYYYMMDD(day)' (or create the table with a migration)",
        )
    client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(spec.database)}")
    client.command(
        create_table_sql(
            spec.database,
            spec.table,
            schema,
            set(chunks.nullable_columns),
            engine=engine,
            order_by=order_by,
            partition_by=spec.partition_by,
            extra_columns=extra,
        )
    )


def _check_mode_fits(spec: LoadSpec, info: TableInfo) -> None:
    where = f"{spec.database}.{spec.table}"
    if spec.mode == "replace_partitions" and not info.partition_key:
        raise ConfigError(
            "write mode 'replace_partitions' needs a partitioned table, but it has no PARTITION BY",
            source=where,
            fix="use mode 'replace', or recreate the table with PARTITION BY in a migration",
        )
    if spec.mode == "upsert":
        if "ReplacingMergeTree" not in info.engine:
            raise ConfigError(
                f"write mode 'upsert' needs a ReplacingMergeTree table, but it is {info.engine}",
                source=where,
                fix="create the table with ENGINE = ReplacingMergeTree(version) ORDER BY (keys)",
            )
        version = spec.version_column or VERSION_COLUMN
        if version not in info.column_types:
            raise ConfigError(
                f"write mode 'upsert' needs version column {version!r} in the table",
                source=where,
                fix=f"add column {version!r} (UInt64 or DateTime64) with a migration",
            )


def load_chunkset(
    client: Client,
    chunks: ChunkSet,
    spec: LoadSpec,
    *,
    log: Any = None,
    on_chunk: Callable[[int, int], None] | None = None,
    engine_reads_files: bool = False,
) -> LoadResult:
    """Write every chunk of ``chunks`` into the target, atomically.

    Args:
        client: An open ClickHouse client.
        chunks: The data.
        spec: Target and write mode.
        log: Logger for progress and warnings.
        on_chunk: Called after each chunk is staged with (chunk index, rows so far).
        engine_reads_files: The ClickHouse engine runs on this machine (embedded chDB), so it
            reads the chunk files itself (``INSERT ... SELECT FROM file()``), which is about
            twice as fast as sending them through the client.

    Raises:
        ConfigError, SchemaError, LoadError: The target is then unchanged.
    """
    spec.validate()
    result = LoadResult()
    where = f"{spec.database}.{spec.table}"
    if spec.mode in ("append", "upsert") and already_loaded(client, spec, chunks.dataset_id):
        result.skipped = f"dataset {chunks.dataset_id} was already loaded into {where}"
        _log(log, "warning", result.skipped + "; nothing written (retry of a finished load)")
        return result
    info = describe_table(client, spec.database, spec.table)
    if info is None:
        if chunks.schema is None:
            result.skipped = f"no rows and no schema: {where} not created"
            _log(log, "warning", result.skipped)
            return result
        if not spec.create_table:
            raise LoadError(
                f"table {where} does not exist",
                source=where,
                fix="create it with a migration (./run.sh migrate) or set create_table=True",
            )
        _create_target(client, spec, chunks)
        result.created = True
        info = describe_table(client, spec.database, spec.table)
        assert info is not None
    _check_mode_fits(spec, info)
    if chunks.rows == 0 and spec.mode == "replace" and not spec.allow_empty_replace:
        result.skipped = f"no rows: {where} kept as it was (allow_empty_replace is off)"
        _log(log, "warning", result.skipped)
        return result
    schema = chunks.schema
    if schema is not None:
        drift = plan_drift(schema, info, spec.schema_drift, set(chunks.nullable_columns))
        for ddl in drift.add:
            client.command(f"ALTER TABLE {spec.qualified} ADD COLUMN IF NOT EXISTS {ddl}")
        if drift.add:
            result.columns_added = drift.add
            _log(log, "info", f"schema drift: added to {where}: {', '.join(drift.add)}")
            info = describe_table(client, spec.database, spec.table)
            assert info is not None
        if drift.drop:
            result.columns_discarded = drift.drop
            _log(
                log,
                "warning",
                f"schema drift: columns not in {where} discarded from every row: "
                + ", ".join(drift.drop),
            )
    else:
        drift = None
    stage = staging_name(spec, chunks.dataset_id)
    drop_table(client, spec.database, stage)
    try:
        client.command(f"CREATE TABLE {qualified_name(stage, spec.database)} AS {spec.qualified}")
        version = time.time_ns()
        add_version = spec.mode == "upsert" and spec.version_column is None
        direct = engine_reads_files and chunks.uniform and chunks.schema is not None
        if direct:
            assert chunks.schema is not None
            columns = [n for n in chunks.schema.names if not (drift and n in drift.drop)]
            for index, path in enumerate(chunks.paths()):
                rows = check_file(path, columns, info, row_offset=result.rows)
                _insert_file(client, spec.database, stage, path, columns, add_version, version)
                result.rows += rows
                result.chunks += 1
                if on_chunk is not None:
                    on_chunk(index, result.rows)
        for index, table in enumerate(() if direct else chunks.iter_tables()):
            if drift and drift.drop:
                table = table.drop_columns(drift.drop)
            check_chunk(table, info, row_offset=result.rows)
            if add_version:
                table = table.append_column(
                    VERSION_COLUMN, pa.array([version] * table.num_rows, pa.uint64())
                )
            client.insert_arrow(stage, table, database=spec.database)
            result.rows += table.num_rows
            result.chunks += 1
            if on_chunk is not None:
                on_chunk(index, result.rows)
        result.partitions = _publish(client, spec, stage)
        _ensure_ledger(client, spec.database)
        _record(client, spec, chunks.dataset_id, result.rows)
        if spec.mode == "upsert" and spec.optimize_after_upsert:
            client.command(f"OPTIMIZE TABLE {spec.qualified} FINAL")
    except DataprocError:
        raise
    except Exception as exc:
        raise LoadError(
            f"loading into {where} failed after {result.rows} staged rows; the table is "
            f"unchanged: {type(exc).__name__}: {str(exc)[:500]}",
            source=where,
            fix="see the ClickHouse error above; the step can be retried safely",
        ) from exc
    finally:
        drop_table(client, spec.database, stage)
    return result


def _insert_file(
    client: Client,
    database: str,
    stage: str,
    path: Path,
    columns: list[str],
    add_version: bool,
    version: int,
) -> None:
    """Let the engine read one chunk file (Arrow IPC or Parquet) into the staging table."""
    names = [quote_identifier(c) for c in columns]
    selected = list(names)
    if add_version:
        names.append(quote_identifier(VERSION_COLUMN))
        selected.append(f"toUInt64({int(version)})")
    literal = str(path).replace("\\", "\\\\").replace("'", "\\'")
    client.command(
        f"INSERT INTO {qualified_name(stage, database)} ({', '.join(names)}) "
        f"SELECT {', '.join(selected)} FROM file('{literal}', {_file_format(path)})"
    )


def _file_format(path: Path) -> str:
    return "Parquet" if path.suffix == ".parquet" else "Arrow"


def _publish(client: Client, spec: LoadSpec, stage: str) -> list[str]:
    staged = qualified_name(stage, spec.database)
    if spec.mode == "replace":
        client.command(f"EXCHANGE TABLES {spec.qualified} AND {staged}")
        return []
    partitions = active_partitions(client, spec.database, stage)
    verb = "REPLACE" if spec.mode == "replace_partitions" else "ATTACH"
    for partition in partitions:
        quoted = partition.replace("\\", "\\\\").replace("'", "\\'")
        client.command(f"ALTER TABLE {spec.qualified} {verb} PARTITION ID '{quoted}' FROM {staged}")
    return partitions


def _log(log: Any, level: str, message: str) -> None:
    if log is not None:
        getattr(log, level)(message)
