"""Partitioned pipelines: the partition window, how it reaches sources and the target table.

A pipeline built with ``create_etl_pipeline(..., partitions=daily_partitions("2024-01-01"))``
materializes one Dagster partition (or a range of them, in a single-run backfill) per run.
The run's :class:`PartitionWindow` reaches every extractor through ``ctx.window`` and the
extractors' window options (templates such as ``"{start:%Y-%m-%d}"``, bound SQL parameters),
and the *window guard* step checks, before the load, that every row lies inside the window
and that the target's ClickHouse partitions are those of the Dagster partitions, so that
``replace_partitions`` replaces exactly the window's days.
"""

# No `from __future__ import annotations`: Dagster reads the op's context annotation.
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    BackfillPolicy,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    In,
    InputContext,
    IOManager,
    MetadataValue,
    MonthlyPartitionsDefinition,
    OpDefinition,
    OpExecutionContext,
    Out,
    Output,
    OutputContext,
    PartitionsDefinition,
    ScheduleDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
    build_schedule_from_partitioned_job,
    op,
)

from dataproc_dagster.clickhouse.sql_safety import check_expression_with_engine, check_identifier
from dataproc_dagster.clickhouse.tables import TargetTable, describe_table
from dataproc_dagster.core.chunks import ChunkSet, ReplacedWindow
from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.core.modes import WriteMode
from dataproc_dagster.observability.metrics import measure_step
from dataproc_dagster.pipeline.steps import CLICKHOUSE_POOL, ChunkSetType, pipeline_errors
from dataproc_dagster.pipeline.window import PartitionWindow, template_fields, window_of


def daily_partitions(
    start: str | datetime,
    *,
    timezone: str = "UTC",
    end_offset: int = 0,
    end: str | datetime | None = None,
) -> DailyPartitionsDefinition:
    """One partition per day from ``start`` (``YYYY-MM-DD``), days of ``timezone``.

    Up to the last day that has ended (``end_offset=1`` adds today), or up to ``end``
    (exclusive) for a data set that stops.
    """
    return DailyPartitionsDefinition(
        start_date=start, timezone=timezone, end_offset=end_offset, end_date=end
    )


def hourly_partitions(
    start: str | datetime, *, timezone: str = "UTC", end_offset: int = 0
) -> HourlyPartitionsDefinition:
    """One partition per hour from ``start`` (``YYYY-MM-DD-HH:MM``)."""
    return HourlyPartitionsDefinition(start_date=start, timezone=timezone, end_offset=end_offset)


def weekly_partitions(
    start: str | datetime, *, timezone: str = "UTC", end_offset: int = 0
) -> WeeklyPartitionsDefinition:
    """One partition per week (Sunday to Sunday, Dagster's default) from ``start``."""
    return WeeklyPartitionsDefinition(start_date=start, timezone=timezone, end_offset=end_offset)


def monthly_partitions(
    start: str | datetime, *, timezone: str = "UTC", end_offset: int = 0
) -> MonthlyPartitionsDefinition:
    """One partition per calendar month from ``start``."""
    return MonthlyPartitionsDefinition(start_date=start, timezone=timezone, end_offset=end_offset)


def static_partitions(keys: Sequence[str]) -> StaticPartitionsDefinition:
    """A fixed list of partitions (regions, customers, ...); the window has only ``key``."""
    return StaticPartitionsDefinition(list(keys))


def is_time_window(partitions: PartitionsDefinition | None) -> bool:
    """True for daily, hourly, weekly, monthly (any time-window) partitions."""
    return isinstance(partitions, TimeWindowPartitionsDefinition)


def partition_expression(partitions: PartitionsDefinition, column: str) -> str:
    """The ClickHouse ``PARTITION BY`` whose partitions are exactly the Dagster partitions.

    ``toYYYYMMDD`` (daily), ``toStartOfHour`` (hourly), ``toStartOfWeek`` (weekly, Sunday or
    Monday weeks) or ``toYYYYMM`` (monthly) of ``column`` in the partitions' time zone.

    Raises:
        ConfigError: For partitions whose windows do not start on a whole day, hour, week or
            month (offsets), or static partitions.
    """
    check_identifier(column, option="time_column", source="partitioned pipeline")
    if not isinstance(partitions, TimeWindowPartitionsDefinition):
        raise ConfigError(
            "a ClickHouse partition expression is derived only from time-window partitions",
            source="partitioned pipeline",
            fix="give the loader partition_by=... yourself for static partitions",
        )
    quoted = "`" + column.replace("`", "``") + "`"
    tz = partitions.timezone or "UTC"
    zone = "'" + tz.replace("\\", "\\\\").replace("'", "\\'") + "'"
    fields = partitions.cron_schedule.split()
    shape = tuple(fields)
    if shape == ("0", "*", "*", "*", "*"):
        return f"toStartOfHour({quoted}, {zone})"
    if shape == ("0", "0", "*", "*", "*"):
        return f"toYYYYMMDD({quoted}, {zone})"
    if shape[:4] == ("0", "0", "*", "*") and shape[4] in ("0", "1"):
        return f"toStartOfWeek({quoted}, {0 if shape[4] == '0' else 1}, {zone})"
    if shape == ("0", "0", "1", "*", "*"):
        return f"toYYYYMM({quoted}, {zone})"
    raise ConfigError(
        f"cannot derive a ClickHouse partition expression for partitions on "
        f"'{partitions.cron_schedule}'",
        source="partitioned pipeline",
        fix="use daily, hourly, weekly (Sunday or Monday) or monthly partitions without "
        "minute/hour offsets, or give the loader partition_by=... yourself",
    )


def backfill_policy_of(choice: str | BackfillPolicy | None) -> BackfillPolicy | None:
    """``single_run`` / ``multi_run`` / a policy / ``None`` (Dagster's default: one run per
    partition)."""
    if choice is None or isinstance(choice, BackfillPolicy):
        return choice
    if choice == "single_run":
        return BackfillPolicy.single_run()
    if choice == "multi_run":
        return BackfillPolicy.multi_run(1)
    raise ConfigError(
        f"unknown backfill policy {choice!r}",
        source="partitioned pipeline",
        fix="use 'single_run', 'multi_run' or a dagster.BackfillPolicy",
    )


@dataclass(frozen=True)
class WindowGuard:
    """What the window guard step checks (see :func:`make_window_guard_op`)."""

    time_column: str | None
    target: TargetTable | None
    partition_by: str | None  # the derived expression the target's partitions must match
    partitions: PartitionsDefinition | None = None

    def replaced_window(self, window: PartitionWindow | None) -> ReplacedWindow | None:
        """Under a derived ``PARTITION BY`` (``replace_partitions`` of time windows): the
        partitions of ``window`` the load replaces as a whole, each by its start."""
        partitions = self.partitions
        if (
            self.partition_by is None
            or self.time_column is None
            or window is None
            or not isinstance(partitions, TimeWindowPartitionsDefinition)
        ):
            return None
        starts = [partitions.time_window_for_partition_key(key).start for key in window.keys]
        return ReplacedWindow(
            self.time_column,
            partitions.timezone or "UTC",
            tuple(int(start.timestamp() * 1_000_000) for start in starts),
        )


def make_window_guard_op(pipeline: str, name: str, guard: WindowGuard) -> OpDefinition:
    """The step between transform and load of a partitioned pipeline.

    It passes its chunks on unchanged after checking that every row's ``time_column`` lies in
    the run's window (a source that ignored the window would otherwise replace other days'
    partitions) and that an existing target table is partitioned by the expression derived
    from the time column and the grain. Its metadata gives the partition, the window, the
    rows and their time range.
    """
    keys = {"clickhouse"} if guard.target is not None and guard.partition_by else set()

    @op(
        name=name,
        description="Check that the rows lie in the run's partition window",
        ins={"chunks": In(ChunkSetType)},
        out=Out(ChunkSetType),
        required_resource_keys=keys,
        tags={"kind": "pyarrow", "dataproc/step": "window"},
        pool=CLICKHOUSE_POOL if keys else None,
    )
    def _guard(context: OpExecutionContext, chunks: ChunkSet) -> Iterator[Output[ChunkSet]]:
        window = window_of(context)
        with (
            pipeline_errors(pipeline, name, "partition window"),
            measure_step(name, context.log) as metrics,
        ):
            metrics.add(chunks.rows, chunks.chunk_count)
            if window is not None:
                metrics.extra["partition"] = window.key
                if window.start is not None and window.end is not None:
                    metrics.extra["window_start"] = window.start.isoformat()
                    metrics.extra["window_end"] = window.end.isoformat()
            if keys:
                _check_target_partitioning(context, guard)
            if guard.time_column and window is not None and window.start is not None:
                low, high = _time_range(chunks, guard.time_column)
                if low is not None and high is not None:
                    metrics.extra["rows_time_min"] = str(low)
                    metrics.extra["rows_time_max"] = str(high)
                    _check_inside(window, guard.time_column, low, high, chunks.rows)
        replaced = guard.replaced_window(window)
        yield Output(
            chunks if replaced is None else replace(chunks, replaces=replaced),
            metadata={
                **metrics.metadata(),
                "columns": MetadataValue.text(", ".join(chunks.columns)),
            },
        )

    return _guard


def _check_target_partitioning(context: OpExecutionContext, guard: WindowGuard) -> None:
    assert guard.target is not None and guard.partition_by is not None
    clickhouse = context.resources.clickhouse
    target = guard.target
    with clickhouse.get_client(step="window guard") as client:
        info = describe_table(client, target.database, target.table)
        if info is None:
            return
        check_expression_with_engine(client, guard.partition_by, option="derived partition_by")
        accepted = {
            _normal(_formatted(client, text)) for text in _equivalent_keys(guard, info.columns)
        }
        found = _formatted(client, info.partition_key) if info.partition_key else ""
    if _normal(found) not in accepted:
        raise ConfigError(
            f"table {target.qualified} is partitioned by {info.partition_key or 'nothing'!r}, "
            f"but the pipeline's partitions need PARTITION BY {guard.partition_by}",
            source=f"ClickHouse {target.qualified}",
            fix="recreate the table with that PARTITION BY (a migration), or load with "
            "another write mode than replace_partitions",
        )


def _equivalent_keys(guard: WindowGuard, columns: Sequence[tuple[str, Any]]) -> list[str]:
    """The derived expression, and without its ``'UTC'`` argument when the column's own time
    zone is UTC (a table created by a migration as ``toYYYYMMDD(ts)`` of a UTC column)."""
    assert guard.partition_by is not None
    keys = [guard.partition_by]
    column = dict(columns).get(guard.time_column or "")
    raw, base = str(getattr(column, "raw", "")), str(getattr(column, "base", ""))
    day_only = base.startswith("Date") and not base.startswith("DateTime")
    utc_column = "'UTC'" in raw or day_only
    if guard.partition_by.endswith(", 'UTC')") and utc_column:
        keys.append(guard.partition_by[: -len(", 'UTC')")] + ")")
    return keys


def _formatted(client: Any, expression: str) -> str:
    """``expression`` as ClickHouse formats it (bound as text: parsed, never run)."""
    rows = client.query(
        "SELECT formatQuerySingleLine('SELECT ' || {e:String})", parameters={"e": expression}
    ).result_rows
    return str(rows[0][0]) if rows else expression


def _normal(expression: str) -> str:
    return "".join(expression.split()).replace('"', "'")


def _time_range(chunks: ChunkSet, column: str) -> tuple[Any, Any]:
    if column not in chunks.columns:
        raise SourceError(
            f"the rows have no time column {column!r} (columns: {', '.join(chunks.columns)})",
            source="partition window",
            fix="set time_column to the column holding each row's time, or derive it in a "
            "transformer",
        )
    low: Any = None
    high: Any = None
    for table in chunks.iter_tables():
        values = table.column(column)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            raise SourceError(
                f"time column {column!r} holds text, not times",
                source="partition window",
                fix="parse it in a transformer, e.g. pd.to_datetime(df[col], utc=True)",
            )
        bounds = pc.min_max(values)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is None:
            continue
        low = lo if low is None or lo < low else low
        high = hi if high is None or hi > high else high
    return low, high


def _check_inside(window: PartitionWindow, column: str, low: Any, high: Any, rows: int) -> None:
    assert window.start is not None and window.end is not None
    start, end = window.start, window.end
    if isinstance(low, datetime):
        # Naive times are UTC, as the loader stores them.
        low, high = (v if v.tzinfo else v.replace(tzinfo=UTC) for v in (low, high))
        inside = start <= low and high < end
    elif isinstance(low, date):
        last = end.date() if end.time() != time() else end.date() - timedelta(days=1)
        inside = start.date() <= low and high <= last
    else:
        return
    if not inside:
        raise SourceError(
            f"{rows} row(s) span {low} to {high} in {column!r}, outside {window.describe()}",
            source="partition window",
            fix="filter the source by the window (window_params, window_parameters, a path "
            "pattern or ctx.window), so that a run loads only its own partitions",
        )


@dataclass(frozen=True)
class PartitionPlan:
    """A partitioned pipeline's checked settings, for the asset job builder."""

    partitions: PartitionsDefinition
    backfill_policy: BackfillPolicy | None
    guard: WindowGuard
    loader: Any


def plan_partitions(
    name: str,
    partitions: PartitionsDefinition,
    *,
    extractor: Any,
    loader: Any,
    time_column: str | None,
    backfill_policy: str | BackfillPolicy | None,
    schedule: str | None,
    timezone: str,
) -> PartitionPlan:
    """Check a partitioned pipeline's options; derive the target's ``PARTITION BY``.

    Raises:
        ConfigError: For incremental extraction with partitions, an extractor that cannot
            read a window, ``replace_partitions`` without a time column or with another
            partition expression, or a schedule in another time zone than the partitions.
    """
    if not isinstance(partitions, PartitionsDefinition):
        raise ConfigError(
            f"partitions must be a dagster PartitionsDefinition, got {type(partitions).__name__}",
            pipeline=name,
            fix="e.g. partitions=daily_partitions('2024-01-01')",
        )
    if extractor is None or loader is None:
        raise ConfigError(
            "only a pipeline with an extractor and a loader can be partitioned",
            pipeline=name,
            fix="drop partitions=, or add an extractor and a loader",
        )
    if getattr(loader, "from_config", False):
        raise ConfigError(
            "a loader whose table comes from run config cannot be partitioned",
            pipeline=name,
            fix="name the table in create_clickhouse_loader('db.table', ...)",
        )
    check_window_source(name, extractor, partitions)
    time_window = isinstance(partitions, TimeWindowPartitionsDefinition)
    if schedule is not None:
        if not time_window:
            raise ConfigError(
                "a schedule needs time-window partitions (daily, hourly, ...)",
                pipeline=name,
                fix="drop schedule=, or launch the static partitions from the UI",
            )
        assert isinstance(partitions, TimeWindowPartitionsDefinition)
        if (partitions.timezone or "UTC") != timezone:
            raise ConfigError(
                f"the schedule's timezone {timezone!r} differs from the partitions' "
                f"{partitions.timezone!r}",
                pipeline=name,
                fix="pass the same timezone to create_etl_pipeline and the partitions helper",
            )
    spec = getattr(loader, "spec", None)
    derived: str | None = None
    if time_column is not None:
        check_identifier(time_column, option="time_column", source=f"pipeline {name}")
    if spec is not None and spec.mode == WriteMode.REPLACE_PARTITIONS and time_window:
        if time_column is None:
            raise ConfigError(
                "replace_partitions of a partitioned pipeline needs the rows' time column",
                pipeline=name,
                fix="pass time_column='<column>' to create_etl_pipeline",
            )
        derived = partition_expression(partitions, time_column)
        if spec.partition_by is None:
            loader = replace(loader, spec=replace(spec, partition_by=derived))
        elif _normal(spec.partition_by) != _normal(derived):
            raise ConfigError(
                f"the loader's partition_by {spec.partition_by!r} is not the partitions' grain",
                pipeline=name,
                fix=f"drop partition_by (it is derived: {derived}) so that a run replaces "
                "exactly its own partitions",
            )
    guard = WindowGuard(time_column, getattr(loader, "target", None), derived, partitions)
    return PartitionPlan(partitions, backfill_policy_of(backfill_policy), guard, loader)


def check_window_source(name: str, extractor: Any, partitions: PartitionsDefinition) -> None:
    """Refuse an extractor that would not read the partition's window.

    Raises:
        ConfigError: Incremental extraction, or a built-in extractor without its window option.
    """
    kind = getattr(extractor, "kind", "custom")
    spec = getattr(extractor, "spec", None)
    if getattr(spec, "incremental", None) is not None or getattr(extractor, "incremental", None):
        raise ConfigError(
            "incremental watermarks and partitions are exclusive: a partition reads its own "
            "window, a watermark reads what is newer than the table's highest value",
            pipeline=name,
            fix="drop incremental=... and pass window_params={'since': '{start:%Y-%m-%d}', ...}",
        )
    missing = {
        "http": (spec is None or not getattr(spec, "window_params", None), "window_params"),
        "clickhouse": (not getattr(extractor, "window_parameters", None), "window_parameters"),
        "metabase": (not getattr(extractor, "window_parameters", None), "window_parameters"),
        "file": (not template_fields(str(getattr(extractor, "path", "")), option="path"), "path"),
    }
    if kind in missing and missing[kind][0]:
        option = missing[kind][1]
        what = (
            "its path has no {start}, {end} or {key} field"
            if option == "path"
            else f"{option} is not set"
        )
        raise ConfigError(
            f"the {kind} extractor does not read the partition window: {what}",
            pipeline=name,
            fix=f"set {option} (see docs/partitions.md), so that each run reads only its partition",
        )


def partitioned_schedule(
    job: Any, cron: str | None, run_config: Mapping[str, Any] | None
) -> ScheduleDefinition | None:
    """The schedule of a partitioned job: each tick runs the partition that just closed.

    Its time zone is the partitions'; ``cron`` says when the tick comes (e.g. ``0 6 * * *``
    loads yesterday at 06:00).

    Raises:
        ConfigError: For run config, which a partitioned schedule does not take.
    """
    if cron is None:
        return None
    if run_config:
        raise ConfigError(
            "schedule_run_config is not supported with partitions",
            source=f"pipeline {job.name}",
            fix="give the steps' options in code; the partition decides the window",
        )
    ticks = _tick_fields(job.name, cron)
    schedule = build_schedule_from_partitioned_job(
        job,
        name=f"{job.name}_schedule",
        description=f"Runs {job.name} at '{cron}' for the partition that just closed.",
        minute_of_hour=ticks.get("minute_of_hour"),
        hour_of_day=ticks.get("hour_of_day"),
        day_of_week=ticks.get("day_of_week"),
        day_of_month=ticks.get("day_of_month"),
    )
    # An asset job's schedule resolves with the job (Dagster's own type, not exported).
    return schedule  # type: ignore[return-value]


def _tick_fields(name: str, cron: str) -> dict[str, int]:
    """``minute_of_hour`` / ``hour_of_day`` / ``day_of_month`` / ``day_of_week`` of ``cron``:
    Dagster places a partitioned job's ticks by offsets from the partition's start."""
    fields = cron.split()
    names = ("minute_of_hour", "hour_of_day", "day_of_month", None, "day_of_week")
    offsets: dict[str, int] = {}
    for field_name, value in zip(names, fields, strict=False):
        if value == "*":
            continue
        if field_name is None or not value.isdigit():
            raise ConfigError(
                f"the schedule '{cron}' of a partitioned pipeline must be one tick per "
                "partition (numbers or '*', no lists, ranges or steps, month '*')",
                pipeline=name,
                fix="e.g. '0 6 * * *' for daily partitions: yesterday's at 06:00",
            )
        offsets[field_name] = int(value)
    return offsets


def window_facts(
    window: PartitionWindow | None, rows: int, facts: Mapping[str, Any]
) -> dict[str, Any]:
    """Materialization metadata of a partition: its key, time range and row count.

    ``dagster/row_count`` becomes the rows of the run's partitions (what Dagster shows per
    partition); the whole table's count moves to ``table_row_count``.
    """
    if window is None:
        return {}
    extra: dict[str, Any] = {"partition": window.key, "partition_rows": rows}
    if "dagster/row_count" in facts:
        extra["table_row_count"] = facts["dagster/row_count"]
        extra["dagster/row_count"] = rows
    if window.start is not None and window.end is not None:
        extra["partition_start"] = window.start.isoformat()
        extra["partition_end"] = window.end.isoformat()
    return extra


# The load step's output (a summary of what was loaded) is not data: the table is in
# ClickHouse. A partitioned asset's output goes to this IO manager, which keeps nothing, so
# that a single-run backfill (one output for many partitions) is possible.
RESULT_IO_MANAGER = "dataproc_load_summary_io_manager"


class LoadSummaryIOManager(IOManager):
    """Keeps nothing: the loaded table lives in ClickHouse, not in the IO manager."""

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Nothing to store."""

    def load_input(self, context: InputContext) -> Any:
        """Nothing downstream reads the load's summary as data."""
        raise ConfigError(
            "the load summary of a partitioned pipeline is not stored",
            source=str(context.asset_key.to_user_string() if context.has_asset_key else ""),
            fix="read the table from ClickHouse instead",
        )


def summary_to_nowhere(load: OpDefinition) -> OpDefinition:
    """The load op with its summary output sent to :class:`LoadSummaryIOManager`."""
    outs = {
        name: Out(
            out.dagster_type,
            description=out.description,
            io_manager_key=RESULT_IO_MANAGER,
        )
        for name, out in load.outs.items()
    }
    return load.with_replaced_properties(load.name, outs=outs)
