"""Exactly-once writes of a :class:`ChunkSet` into a ClickHouse table that others share.

Every mode first writes all chunks into a private staging table shaped like the target, then
publishes them with operations that touch only the load's own rows and can be repeated
(:mod:`dataproc_dagster.loading.publish`): partitions moved or inserted into the target
(``append``, ``upsert``), partitions replaced (``replace_partitions``), or, for a full
``replace`` only, the table swapped. The ledger (:mod:`dataproc_dagster.loading.ledger`)
records each load under its identity, so publishing the same load twice is a no-op and an
interrupted publish is finished by whoever comes next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier
from dataproc_dagster.clickhouse.tables import (
    TableInfo,
    active_partitions,
    create_table_sql,
    describe_table,
)
from dataproc_dagster.core.chunks import ChunkSet
from dataproc_dagster.core.errors import ConfigError, DataprocError, LoadError, SchemaError
from dataproc_dagster.core.modes import WriteMode
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.loading.files import GLOB_CHARACTERS, file_batches, insert_files
from dataproc_dagster.loading.ledger import (
    ABANDONED,
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    LEDGER_TABLE,
    PUBLISHED,
    PUBLISHING,
    STAGED,
    STAGING,
    LedgerEntry,
    drop_work_table,
    ensure_ledger,
    kill_point_for_tests,
    load_key,
    owner_is_dead,
    read_entry,
    stage_table_name,
    this_owner,
    write_entry,
)
from dataproc_dagster.loading.publish import (
    finish_publishing,
    mark_replaced,
    recover_target,
    stage_insert_settings,
    start_publishing,
    window_partition_ids,
)
from dataproc_dagster.loading.schema_check import (
    check_chunk,
    check_file,
    plan_drift,
)
from dataproc_dagster.loading.spec import (
    VERSION_COLUMN,
    LoadResult,
    LoadSpec,
)
from dataproc_dagster.loading.targets import (
    check_target_engine,
    check_views_allow,
    table_engine,
)

__all__ = ["LEDGER_TABLE", "LoadResult", "LoadSpec", "load_chunkset"]

# A stage with no ledger row yet is taken as another attempt's for this long (it records itself
# right after creating the stage); after that it is a leftover of a crash.
UNRECORDED_GRACE_SECONDS = 30.0


def _create_target(client: Client, spec: LoadSpec, chunks: ChunkSet) -> None:
    schema = chunks.schema
    assert schema is not None
    extra: list[str] = []
    engine = "MergeTree"
    order_by: Sequence[str] = spec.order_by
    if spec.mode == WriteMode.UPSERT:
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
    if spec.mode == WriteMode.REPLACE_PARTITIONS and not spec.partition_by:
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
    if spec.mode == WriteMode.REPLACE_PARTITIONS and not info.partition_key:
        raise ConfigError(
            "write mode 'replace_partitions' needs a partitioned table, but it has no PARTITION BY",
            source=where,
            fix="use mode 'replace', or recreate the table with PARTITION BY in a migration",
        )
    if spec.mode == WriteMode.UPSERT:
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
    run_id: str | None = None,
    load_id: str | None = None,
    exclusive: bool = False,
) -> LoadResult:
    """Write every chunk of ``chunks`` into the target, exactly once per load identity.

    Args:
        client: An open ClickHouse client.
        chunks: The data.
        spec: Target and write mode.
        log: Logger for progress and warnings.
        on_chunk: Called after each chunk is staged with (chunk index, rows so far).
        engine_reads_files: The ClickHouse engine runs on this machine (embedded chDB), so it
            reads the chunk files itself (``INSERT ... SELECT FROM file()``), which is about
            twice as fast as sending them through the client.
        run_id: The run doing this load, recorded in the ledger (default: the first part of
            the load id).
        load_id: The identity of this load (default: the chunks' ``dataset_id``). The Dagster
            layer passes ``<root run id>/<step>``, so every retry and re-execution of a step
            is the same load: once published, loading it again writes nothing.
        exclusive: The caller holds the embedded engine's directory lock, so every unfinished
            load of another process is dead and is settled at once.

    Raises:
        ConfigError, SchemaError, LoadError: Nothing of this load was published then, or (a
            failure while publishing) the load is recorded as publishing and the next attempt,
            re-execution or load of the table finishes it.
    """
    spec.validate()
    result = LoadResult()
    where = f"{spec.database}.{spec.table}"
    load_id = load_id or chunks.dataset_id
    run_id = run_id or load_id.split("/", 1)[0]
    key = load_key(spec.database, spec.table, load_id)
    stage = stage_table_name(spec.table, key)
    kill_point_for_tests("start")
    engine = table_engine(client, spec.database, spec.table)
    if engine is not None:
        check_target_engine(engine)
    ensure_ledger(client, spec.database)
    result.recovered = recover_target(
        client,
        spec.database,
        spec.table,
        exclusive=exclusive,
        keep=key,
        log=(lambda line: _log(log, "warning", line)),
    )
    own = read_entry(client, spec.database, spec.table, key)
    if own is not None and own.state in (PUBLISHED, PUBLISHING):
        return _finish_own(client, spec, own, result, log)
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
        engine = table_engine(client, spec.database, spec.table)
        assert info is not None and engine is not None
    _check_mode_fits(spec, info)
    assert engine is not None  # checked above, or created here as a MergeTree table
    views = check_views_allow(client, engine, spec.mode)
    if chunks.rows == 0 and spec.mode == WriteMode.REPLACE and not spec.allow_empty_replace:
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
    # The window's partitions this load replaces as a whole: one without rows is emptied,
    # unless no partition has rows (a source that answered nothing by mistake would empty
    # the whole window; allow_empty_replace says that empty is a real state).
    replaced = (
        window_partition_ids(client, info, getattr(chunks, "replaces", None))
        if spec.mode == WriteMode.REPLACE_PARTITIONS
        else []
    )
    if replaced and chunks.rows == 0 and not spec.allow_empty_replace:
        result.skipped = (
            f"no rows: partitions {', '.join(replaced)} of {where} kept as they were "
            "(allow_empty_replace is off)"
        )
        _log(log, "warning", result.skipped)
        return result
    claimed = _claim_stage(client, spec, key, stage, exclusive=exclusive, log=log)
    if claimed is not None:
        return _finish_own(client, spec, claimed, result, log)
    mark_replaced(client, spec.database, stage, replaced)
    entry = LedgerEntry(spec.table, key, load_id, spec.mode.value, run_id, STAGING, stage=stage)
    write_entry(client, spec.database, entry)
    try:
        settings = stage_insert_settings(client)
        renewed = time.monotonic()
        version = time.time_ns()
        add_version = spec.mode == WriteMode.UPSERT and spec.version_column is None

        def staged_one(index: int) -> None:
            nonlocal renewed
            result.chunks += 1
            if on_chunk is not None:
                on_chunk(index, result.rows)
            kill_point_for_tests(f"staging:chunk:{index}")
            if time.monotonic() - renewed > HEARTBEAT_SECONDS:
                write_entry(client, spec.database, entry)  # renews the lease
                renewed = time.monotonic()

        # The engine reads a file() path as a glob pattern: a folder holding glob characters
        # would match no file and load nothing, so its chunks go through the client.
        direct = (
            engine_reads_files
            and chunks.uniform
            and chunks.schema is not None
            and not GLOB_CHARACTERS & set(chunks.directory)
        )
        if direct:
            assert chunks.schema is not None
            columns = [n for n in chunks.schema.names if not (drift and n in drift.drop)]
            index = 0
            for batch in file_batches(chunks, get_settings().load_insert_rows):
                counts: list[int] = []
                for path in batch:  # every file of the batch is checked before it is read
                    offset = result.rows + sum(counts)
                    counts.append(check_file(path, columns, info, row_offset=offset))
                insert_files(
                    client, spec.database, stage, batch, columns, add_version, version, settings
                )
                for rows in counts:
                    result.rows += rows
                    staged_one(index)
                    index += 1
        for index, table in enumerate(() if direct else chunks.iter_tables()):
            if drift and drift.drop:
                table = table.drop_columns(drift.drop)
            check_chunk(table, info, row_offset=result.rows)
            if add_version:
                table = table.append_column(
                    VERSION_COLUMN, pa.array([version] * table.num_rows, pa.uint64())
                )
            client.insert_arrow(stage, table, database=spec.database, settings=settings)
            result.rows += table.num_rows
            staged_one(index)
        result.partitions = active_partitions(client, spec.database, stage)
        entry = entry.moved(STAGED, rows=result.rows)
        write_entry(client, spec.database, entry)
        kill_point_for_tests("staged")
        if result.rows == 0 and spec.mode != WriteMode.REPLACE and not replaced:
            entry = entry.moved(PUBLISHED, note="no rows")
            write_entry(client, spec.database, entry)
            drop_work_table(client, spec.database, stage)
        else:
            entry = start_publishing(client, spec.database, entry)
            kill_point_for_tests("publishing")
            entry = finish_publishing(client, spec.database, entry, through_views=bool(views))
        kill_point_for_tests("published")
    except (DataprocError, OperationalError):
        # A broken connection is reported by the ClickHouse resource, naming the server.
        _undo_unpublished(client, spec, entry, log)
        raise
    except Exception as exc:
        state = _undo_unpublished(client, spec, entry, log)
        if state == PUBLISHED:
            _log(log, "info", f"{where}: the load was finished by another process")
        else:
            outcome = (
                "the load is recorded as publishing: the step's retry, a re-execution or the "
                "next load of the table finishes it"
                if state == PUBLISHING
                else "the table is unchanged"
            )
            raise LoadError(
                f"loading into {where} failed after {result.rows} staged rows; "
                f"{outcome}: {type(exc).__name__}: {str(exc)[:500]}",
                source=where,
                fix="see the ClickHouse error above; the step can be retried safely",
            ) from exc
    _optimize(client, spec, result)
    return result


def _claim_stage(
    client: Client, spec: LoadSpec, key: str, stage: str, *, exclusive: bool, log: Any
) -> LedgerEntry | None:
    """Create this load's staging table once no other attempt of the same load is staging.

    Two attempts of one load can overlap (a re-execution on another pod while the first
    attempt still runs): the one whose ``CREATE TABLE`` succeeds stages, the other waits until
    that attempt is over, never dropping a live attempt's stage. Returns the entry of an attempt
    that published (or began to) meanwhile: then there is nothing to stage.
    """
    started = time.monotonic()
    waited_note = False
    while True:
        own = read_entry(client, spec.database, spec.table, key)
        if own is not None and own.state in (PUBLISHED, PUBLISHING):
            return own
        if table_engine(client, spec.database, stage) is not None:
            waited = time.monotonic() - started
            if own is None or own.state == ABANDONED:
                # Created by an attempt that has not recorded itself yet, or a leftover.
                alive = not exclusive and own is None and waited < UNRECORDED_GRACE_SECONDS
            else:
                alive = not owner_is_dead(own, exclusive=exclusive, same_load=True)
            if alive and waited < LEASE_SECONDS:
                if not waited_note:
                    owner = own.owner if own is not None else "another process"
                    _log(log, "info", f"waiting for the other attempt of this load ({owner})")
                    waited_note = True
                time.sleep(1.0)
                continue
            drop_work_table(client, spec.database, stage)  # an earlier attempt, now over
        try:
            client.command(
                f"CREATE TABLE {qualified_name(stage, spec.database)} AS {spec.qualified}"
            )
            return None
        except Exception as exc:
            if "TABLE_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise
            time.sleep(0.2)  # another attempt created it first: wait for it above


def _finish_own(
    client: Client, spec: LoadSpec, own: LedgerEntry, result: LoadResult, log: Any
) -> LoadResult:
    """A retry or re-execution of a load that published (or began to)."""
    where = f"{spec.database}.{spec.table}"
    if own.state == PUBLISHING:
        # The same load: its earlier attempt is over, so even a full replace may swap now.
        finish_publishing(client, spec.database, own)
        result.rows = own.rows
        _log(log, "info", f"{where}: finished publishing load {own.load_id} ({own.rows} rows)")
        _optimize(client, spec, result)
        return result
    drop_work_table(client, spec.database, own.stage)
    result.skipped = (
        f"already loaded: load {own.load_id} was published into {where} by run {own.run_id}"
    )
    _log(log, "info", result.skipped + "; nothing written (a retry or re-execution)")
    return result


def _optimize(client: Client, spec: LoadSpec, result: LoadResult) -> None:
    if spec.mode == WriteMode.UPSERT and spec.optimize_after_upsert and not result.skipped:
        client.command(f"OPTIMIZE TABLE {spec.qualified} FINAL")


def _undo_unpublished(client: Client, spec: LoadSpec, entry: LedgerEntry, log: Any) -> str:
    """After a failure: undo a load that had not begun publishing; return its state now.

    A load that began publishing is left as ``publishing`` for whoever comes next to finish
    (unless another process already did).
    """
    try:
        current = read_entry(client, spec.database, spec.table, entry.load_key) or entry
        if current.state in (PUBLISHED, ABANDONED, PUBLISHING):
            return current.state
        if current.owner != this_owner():
            return current.state  # another attempt of this load: its stage is its own
        drop_work_table(client, spec.database, entry.stage)
        write_entry(
            client, spec.database, current.moved(ABANDONED, owner="", note="the load failed")
        )
        return ABANDONED
    except Exception as exc:  # the engine itself may be gone; the next load settles it
        _log(log, "warning", f"could not clean up after the failed load: {exc}")
        return entry.state


def _log(log: Any, level: str, message: str) -> None:
    if log is not None:
        getattr(log, level)(message)
