"""Atomic, exactly-once writes of a :class:`ChunkSet` into a ClickHouse table.

Every mode loads all chunks into a staging table shaped like the target, then publishes them with
one ``EXCHANGE TABLES`` of the target and a shadow table, so readers see the old table or the
complete new one and nothing in between:

- ``append`` / ``upsert``: the shadow gets the target's partitions and then the staged ones
  (``ATTACH PARTITION ... FROM`` hard-links parts, nothing is copied);
- ``replace_partitions``: the shadow gets the target's partitions absent from the data, then the
  staged ones;
- ``replace``: the staging table is the shadow.

The ledger (:mod:`dataproc_dagster.loading.ledger`) records every state of every load, so the
next load of a table settles what a dead process left and never publishes the same data twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier
from dataproc_dagster.clickhouse.tables import (
    TableInfo,
    active_partitions,
    create_table_sql,
    describe_table,
    drop_table,
)
from dataproc_dagster.core.chunks import ChunkSet
from dataproc_dagster.core.errors import ConfigError, DataprocError, LoadError, SchemaError
from dataproc_dagster.core.modes import WriteMode
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.loading.files import GLOB_CHARACTERS, file_batches, insert_files
from dataproc_dagster.loading.ledger import (
    ABANDONED,
    FINAL_STATES,
    HEARTBEAT_SECONDS,
    LEDGER_TABLE,
    PUBLISHED,
    PUBLISHING,
    STAGED,
    STAGING,
    LedgerEntry,
    ensure_ledger,
    fingerprint,
    kill_point_for_tests,
    latest_published,
    mark_for_swap,
    read_entries,
    recover_target,
    restore_comment,
    settle,
    write_entry,
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
    shadow_name,
    staging_name,
)

__all__ = ["LEDGER_TABLE", "LoadResult", "LoadSpec", "load_chunkset"]


def already_loaded(client: Client, spec: LoadSpec, dataset_id: str) -> bool:
    """Whether this dataset was already published into this table."""
    ensure_ledger(client, spec.database)
    entries = read_entries(client, spec.database, spec.table, dataset_id)
    return bool(entries) and entries[-1].state == PUBLISHED


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
    run_succeeded: Callable[[str], bool | None] | None = None,
    exclusive: bool = False,
) -> LoadResult:
    """Write every chunk of ``chunks`` into the target, atomically and exactly once.

    Args:
        client: An open ClickHouse client.
        chunks: The data.
        spec: Target and write mode.
        log: Logger for progress and warnings.
        on_chunk: Called after each chunk is staged with (chunk index, rows so far).
        engine_reads_files: The ClickHouse engine runs on this machine (embedded chDB), so it
            reads the chunk files itself (``INSERT ... SELECT FROM file()``), which is about
            twice as fast as sending them through the client.
        run_id: The run doing this load, recorded in the ledger (default: the run that
            produced the chunks).
        run_succeeded: ``run_id -> bool | None``: whether a run finished successfully (``None``
            when the run is unknown). With it, an ``append``/``upsert`` whose data is identical to
            the latest published load, made by a known run that did not succeed, is recorded
            instead of published again (docs/loading.md).
        exclusive: The caller holds the embedded engine's directory lock, so every unfinished
            load of another process is dead and is settled at once.

    Raises:
        ConfigError, SchemaError, LoadError: The target is then unchanged.
    """
    spec.validate()
    result = LoadResult()
    where = f"{spec.database}.{spec.table}"
    dataset_id = chunks.dataset_id
    run_id = run_id or dataset_id.split("/", 1)[0]
    kill_point_for_tests("start")
    ensure_ledger(client, spec.database)
    result.recovered = recover_target(
        client,
        spec.database,
        spec.table,
        exclusive=exclusive,
        log=(lambda line: _log(log, "warning", line)),
    )
    if spec.mode in (WriteMode.APPEND, WriteMode.UPSERT) and already_loaded(
        client, spec, dataset_id
    ):
        result.skipped = f"dataset {dataset_id} was already loaded into {where}"
        _log(log, "warning", result.skipped + "; nothing written (retry of a finished load)")
        done = read_entries(client, spec.database, spec.table, dataset_id)[-1]
        if done.run_id != run_id:
            # This run now stands for the data: a later identical load is judged by its outcome.
            note = f"re-execution of run {done.run_id}, which had published it"
            write_entry(client, spec.database, done.moved(PUBLISHED, run_id=run_id, note=note))
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
    stage = staging_name(spec, dataset_id)
    shadow = stage if spec.mode == WriteMode.REPLACE else shadow_name(spec, dataset_id)
    entry = LedgerEntry(
        spec.table, dataset_id, spec.mode.value, run_id, STAGING, stage=stage, shadow=shadow
    )
    drop_table(client, spec.database, stage)
    drop_table(client, spec.database, shadow)
    write_entry(client, spec.database, entry)
    try:
        client.command(f"CREATE TABLE {qualified_name(stage, spec.database)} AS {spec.qualified}")
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
                insert_files(client, spec.database, stage, batch, columns, add_version, version)
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
            client.insert_arrow(stage, table, database=spec.database)
            result.rows += table.num_rows
            staged_one(index)
        result.partitions = active_partitions(client, spec.database, stage)
        data_columns = [c for c, _ in info.columns if not (add_version and c == VERSION_COLUMN)]
        entry = entry.moved(
            STAGED,
            rows=result.rows,
            fingerprint=fingerprint(client, spec.database, stage, data_columns)
            if spec.mode in (WriteMode.APPEND, WriteMode.UPSERT)
            else "",
        )
        write_entry(client, spec.database, entry)
        kill_point_for_tests("staged")
        duplicate = _published_by_unfinished_run(client, spec, entry, run_succeeded)
        if duplicate is not None:
            result.skipped = duplicate
            _log(log, "warning", f"{where}: {duplicate}; nothing written")
            entry = entry.moved(PUBLISHED, note=duplicate)
            write_entry(client, spec.database, entry)
            result.rows = 0
        elif result.rows == 0 and spec.mode != "replace":
            entry = entry.moved(PUBLISHED, note="no rows")
            write_entry(client, spec.database, entry)
        else:
            entry = _publish(client, spec, entry)
        kill_point_for_tests("published")
        drop_table(client, spec.database, shadow)
        if spec.mode == WriteMode.UPSERT and spec.optimize_after_upsert and not result.skipped:
            client.command(f"OPTIMIZE TABLE {spec.qualified} FINAL")
    except DataprocError:
        _settle_own(client, spec, entry, log)
        raise
    except Exception as exc:
        settled = _settle_own(client, spec, entry, log)
        state = "has the new data" if settled == PUBLISHED else "is unchanged"
        raise LoadError(
            f"loading into {where} failed after {result.rows} staged rows; the table "
            f"{state}: {type(exc).__name__}: {str(exc)[:500]}",
            source=where,
            fix="see the ClickHouse error above; the step can be retried safely",
        ) from exc
    finally:
        drop_table(client, spec.database, stage)
    return result


def _published_by_unfinished_run(
    client: Client,
    spec: LoadSpec,
    entry: LedgerEntry,
    run_succeeded: Callable[[str], bool | None] | None,
) -> str | None:
    """A note when the latest published load holds the same data and its run did not finish.

    A brand-new run after a crash re-extracts the same source data (incremental bounds are read
    from the target), so identical staged data means the crashed run had already published it.
    Data published by a run that finished is never matched: loading the same rows again in a
    new, separate run is then what the user asked for.
    """
    if (
        run_succeeded is None
        or spec.mode not in (WriteMode.APPEND, WriteMode.UPSERT)
        or not entry.fingerprint
    ):
        return None
    previous = latest_published(client, spec.database, spec.table)
    if previous is None or previous.fingerprint != entry.fingerprint:
        return None
    # An unknown run (a temporary instance, a wiped run history) is not judged: skipping data
    # that a successful run had loaded would lose a real second load.
    if previous.run_id == entry.run_id or run_succeeded(previous.run_id) is not False:
        return None
    return f"identical to the data already published by run {previous.run_id}, which did not finish"


def _settle_own(client: Client, spec: LoadSpec, entry: LedgerEntry, log: Any) -> str:
    """After a failure: finish or undo this load now rather than leaving it to the next one."""
    if entry.state in FINAL_STATES:
        return entry.state
    try:
        outcome = settle(client, spec.database, entry, note="the load failed")
    except Exception as exc:  # the engine itself may be gone; the next load settles it
        _log(log, "warning", f"could not clean up after the failed load: {exc}")
        return entry.state
    return PUBLISHED if outcome.startswith(PUBLISHED) else ABANDONED


def _publish(client: Client, spec: LoadSpec, entry: LedgerEntry) -> LedgerEntry:
    """Assemble the shadow (the next version of the target) and swap it in, in one operation."""
    database = spec.database
    staged = qualified_name(entry.stage, database)
    shadow = qualified_name(entry.shadow, database)
    if spec.mode != "replace":
        client.command(f"CREATE TABLE {shadow} AS {spec.qualified}")
    # Recorded before the swap: after it, the target carries the marker (how recovery tells).
    marker, comment = mark_for_swap(client, database, entry.shadow, entry.dataset_id)
    entry = entry.moved(PUBLISHING, swap_marker=marker, target_comment=comment)
    write_entry(client, database, entry)
    if spec.mode != "replace":
        new = active_partitions(client, database, entry.stage)
        keep = active_partitions(client, database, spec.table)
        if spec.mode == WriteMode.REPLACE_PARTITIONS:
            keep = [p for p in keep if p not in set(new)]
        moves = [(p, spec.qualified) for p in keep] + [(p, staged) for p in new]
        for count, (partition, source) in enumerate(moves, start=1):
            quoted = partition.replace("\\", "\\\\").replace("'", "\\'")
            client.command(f"ALTER TABLE {shadow} ATTACH PARTITION ID '{quoted}' FROM {source}")
            kill_point_for_tests(f"publishing:attach:{count}")
    kill_point_for_tests("publishing:before_swap")
    client.command(f"EXCHANGE TABLES {spec.qualified} AND {shadow}")
    kill_point_for_tests("publishing:after_swap")
    entry = entry.moved(PUBLISHED)
    write_entry(client, database, entry)
    kill_point_for_tests("published:before_comment")
    restore_comment(client, database, entry)
    return entry


def _log(log: Any, level: str, message: str) -> None:
    if log is not None:
        getattr(log, level)(message)
