"""Publishing a staged load into its target, idempotently, and finishing what others left.

Every operation here touches only the load's own rows and can be repeated:

- ``append`` / ``upsert``: each staged partition is moved into the target
  (``ALTER TABLE stage MOVE PARTITION ID p TO TABLE target``). A partition is either still in
  the stage or in the target, so the stage itself records the progress and a repeated publish
  moves only what is left. On a target read by materialized views, each partition is inserted
  instead (``INSERT ... SELECT`` with the token ``<load key>:<partition>``, which the target's
  deduplication window turns into a no-op when repeated) and then dropped from the stage.
- ``replace_partitions``: each staged partition replaces its own
  (``REPLACE PARTITION ID p FROM stage``); repeating it gives the same partition. A partition of
  the run's window without staged rows is replaced from the stage too, which empties it: the
  window's partitions are written into the stage's comment before publishing, so whoever
  finishes the load knows them too.
- ``replace``: the stage is swapped with the target (``EXCHANGE TABLES``). The only operation
  that is not repeatable: before it the stage gets a marker that the target carries after it
  (:func:`mark_for_swap`), so whoever comes next can tell whether it happened.

A load in ``publishing`` is finished (rolled forward) by whoever comes next: the step's retry,
a re-execution, the next load of the table, ``./run.sh check``; none of them needs to know
whether its first owner is alive. A load that never reached ``publishing`` is undone once its
owner is gone or its lease ran out.
"""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier
from dataproc_dagster.clickhouse.tables import TableInfo, active_partitions
from dataproc_dagster.core.chunks import ReplacedWindow
from dataproc_dagster.core.modes import WriteMode
from dataproc_dagster.loading.ledger import (
    ABANDONED,
    COMMENT_MARK,
    FINAL_STATES,
    LEASE_SECONDS,
    PUBLISHED,
    PUBLISHING,
    LedgerEntry,
    drop_work_table,
    kill_point_for_tests,
    owner_is_dead,
    read_entries_by_keys,
    read_entry,
    this_owner,
    work_tables,
    write_entry,
)
from dataproc_dagster.loading.targets import materialized_views, table_engine

INCOMPATIBLE_COLUMNS = "INCOMPATIBLE_COLUMNS"
# The stage's comment under replace_partitions: the window's partition ids, comma-separated.
REPLACES_MARK = "dataproc-replaces:"


def known_settings(client: Client, names: list[str]) -> set[str]:
    """Which of ``names`` this ClickHouse knows (older servers lack the newer settings)."""
    rows = client.query(
        "SELECT name FROM system.settings WHERE name IN {n:Array(String)}",
        parameters={"n": names},
    ).result_rows
    return {str(r[0]) for r in rows}


def stage_insert_settings(client: Client) -> dict[str, object]:
    """Settings for inserts into a private stage: no dedup, any number of partitions per block.

    ``CREATE TABLE stage AS target`` copies the target's settings, a deduplication window
    included: two identical chunks of one load must both stay.
    """
    known = known_settings(client, ["deduplicate_insert", "insert_deduplicate"])
    settings: dict[str, object] = {"max_partitions_per_insert_block": 0}
    if "deduplicate_insert" in known:
        settings["deduplicate_insert"] = "disable"
    if "insert_deduplicate" in known:
        settings["insert_deduplicate"] = 0
    return settings


def _publish_insert_settings(client: Client) -> dict[str, object]:
    """Settings of the inserts that publish into a target read by materialized views.

    The caller adds ``insert_deduplication_token`` per partition.
    """
    known = known_settings(
        client,
        [
            "deduplicate_insert",
            "deduplicate_insert_select",
            "deduplicate_blocks_in_dependent_materialized_views",
        ],
    )
    # One thread reads and inserts, so the blocks (and their derived tokens) are the same on
    # every repetition.
    settings: dict[str, object] = {
        "insert_deduplicate": 1,
        "max_threads": 1,
        "max_insert_threads": 1,
    }
    if "deduplicate_insert" in known:
        settings["deduplicate_insert"] = "enable"
    if "deduplicate_insert_select" in known:
        settings["deduplicate_insert_select"] = "force_enable"
    if "deduplicate_blocks_in_dependent_materialized_views" in known:
        settings["deduplicate_blocks_in_dependent_materialized_views"] = 1
    return settings


def _literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _table_field(client: Client, database: str, table: str, column: str) -> str | None:
    rows = client.query(
        f"SELECT toString({column}) FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return str(rows[0][0]) if rows else None


def window_partition_ids(
    client: Client, info: TableInfo, window: ReplacedWindow | None
) -> list[str]:
    """The target's partition ids of ``window`` (one per partition start), computed by the
    engine from the table's own ``PARTITION BY`` and the time column's type."""
    if window is None or not window.starts_us or not info.partition_key:
        return []
    types = {name: ctype.raw for name, ctype in info.columns}
    if window.column not in types:
        return []
    rows = client.query(
        f"SELECT DISTINCT partitionID({info.partition_key}) FROM (SELECT "
        "CAST(fromUnixTimestamp64Micro(arrayJoin({starts:Array(Int64)}), {tz:String}), "
        f"{{type:String}}) AS {quote_identifier(window.column)}) ORDER BY 1",
        parameters={
            "starts": list(window.starts_us),
            "tz": window.timezone,
            "type": types[window.column],
        },
    ).result_rows
    return [str(row[0]) for row in rows]


def mark_replaced(client: Client, database: str, stage: str, partition_ids: list[str]) -> None:
    """Record in the stage which target partitions the load replaces as a whole."""
    if partition_ids:
        _set_comment(client, database, stage, REPLACES_MARK + ",".join(partition_ids))


def _replaced(client: Client, database: str, stage: str) -> list[str]:
    comment = _table_field(client, database, stage, "comment") or ""
    if not comment.startswith(REPLACES_MARK):
        return []
    return [p for p in comment[len(REPLACES_MARK) :].split(",") if p]


def _set_comment(client: Client, database: str, table: str, comment: str) -> None:
    client.command(
        f"ALTER TABLE {qualified_name(table, database)} MODIFY COMMENT '{_literal(comment)}'"
    )


def mark_for_swap(client: Client, database: str, stage: str, token: str) -> tuple[str, str]:
    """Give the stage of a full replace an identity the target carries after the swap.

    Returns (marker, the stage's original comment). In an Atomic database the marker is the
    stage's uuid (``EXCHANGE TABLES`` swaps names; each table keeps its uuid). In a database
    without table uuids (the embedded engine's ``default``, engine Overlay) it is a table
    comment, travelling with the table through the swap and restored once it is published.
    """
    uuid = _table_field(client, database, stage, "uuid") or ""
    if uuid.strip("0-"):
        return f"uuid:{uuid}", ""
    original = _table_field(client, database, stage, "comment") or ""
    marker = f"{COMMENT_MARK}{token}"
    _set_comment(client, database, stage, marker)
    return f"comment:{marker}", original


def swap_happened(client: Client, database: str, entry: LedgerEntry) -> bool:
    """Whether the target of a full replace is now the table that was its stage."""
    kind, _, value = entry.swap_marker.partition(":")
    if not value:
        return False
    column = "uuid" if kind == "uuid" else "comment"
    return _table_field(client, database, entry.target, column) == value


def restore_comment(client: Client, database: str, entry: LedgerEntry) -> None:
    """Put back the target's comment replaced by a swap marker (no-op for uuid markers)."""
    kind, _, value = entry.swap_marker.partition(":")
    if kind == "comment" and _table_field(client, database, entry.target, "comment") == value:
        _set_comment(client, database, entry.target, entry.target_comment)


def start_publishing(client: Client, database: str, entry: LedgerEntry) -> LedgerEntry:
    """Record that ``entry`` publishes from now on (a full replace first marks its stage)."""
    marker, comment = "", ""
    if entry.mode == WriteMode.REPLACE:
        marker, comment = mark_for_swap(client, database, entry.stage, entry.load_key)
    entry = entry.moved(PUBLISHING, swap_marker=marker, target_comment=comment)
    write_entry(client, database, entry)
    return entry


def _columns(client: Client, database: str, table: str) -> dict[str, tuple[str, str, str]]:
    rows = client.query(
        "SELECT name, type, default_kind, default_expression FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} ORDER BY position",
        parameters={"db": database, "t": table},
    ).result_rows
    return {str(n): (str(t), str(k), str(e)) for n, t, k, e in rows}


def align_stage(client: Client, database: str, stage: str, target: str) -> list[str]:
    """Give the stage the columns the target gained or lost while the load ran.

    Partition operations need the same structure on both sides; a migration (``ADD COLUMN``)
    on the target during a load must stay, so the stage follows the target, never the reverse.
    """
    want = _columns(client, database, target)
    have = _columns(client, database, stage)
    clauses: list[str] = []
    for name, (ctype, kind, expression) in want.items():
        quoted = f"`{name.replace('`', '``')}`"
        if name not in have:
            default = f" {kind} {expression}" if kind and expression else ""
            clauses.append(f"ADD COLUMN IF NOT EXISTS {quoted} {ctype}{default}")
        elif have[name][0] != ctype:
            clauses.append(f"MODIFY COLUMN {quoted} {ctype}")
    for name in have:
        if name not in want:
            clauses.append(f"DROP COLUMN IF EXISTS `{name.replace('`', '``')}`")
    if clauses:
        client.command(
            f"ALTER TABLE {qualified_name(stage, database)} {', '.join(clauses)}",
            settings={"mutations_sync": 2, "alter_sync": 2},
        )
    return clauses


def _aligned(
    client: Client,
    database: str,
    entry: LedgerEntry,
    sql: str,
    settings: dict[str, object] | None = None,
) -> None:
    """Run a partition operation; when the target's structure changed meanwhile, follow it."""
    try:
        client.command(sql, settings=settings)
    except Exception as exc:
        if INCOMPATIBLE_COLUMNS not in str(exc) and "different structure" not in str(exc):
            raise
        align_stage(client, database, entry.stage, entry.target)
        client.command(sql, settings=settings)


def _empty_replace_settings(client: Client) -> dict[str, object]:
    """Let ``REPLACE PARTITION`` from a stage without that partition empty it (newer servers
    refuse it otherwise; older ones always did)."""
    name = "allow_replace_partition_from_empty_source"
    return {name: 1} if name in known_settings(client, [name]) else {}


def _stage_gone(client: Client, database: str, entry: LedgerEntry) -> LedgerEntry | None:
    """The entry as another finisher of the same load recorded it, when that one dropped the
    stage meanwhile (the stage is dropped only after the load is recorded as published)."""
    if table_engine(client, database, entry.stage) is not None:
        return None
    current = read_entry(client, database, entry.target, entry.load_key)
    return current if current is not None and current.state in FINAL_STATES else None


def _insertable(client: Client, database: str, stage: str) -> list[str]:
    return [
        f"`{name.replace('`', '``')}`"
        for name, (_, kind, _) in _columns(client, database, stage).items()
        if kind not in ("MATERIALIZED", "ALIAS", "EPHEMERAL")
    ]


def finish_publishing(
    client: Client, database: str, entry: LedgerEntry, *, through_views: bool | None = None
) -> LedgerEntry:
    """Publish what is left of ``entry``'s stage, record it published and drop the stage.

    Safe to call from any process, any number of times, also while the load's owner is still
    publishing (for a full replace only when the owner is known to be gone).

    Args:
        client: Open client.
        database: The target's database.
        entry: A load in ``publishing``.
        through_views: Insert (rather than move) the partitions, so materialized views see
            them; ``None`` decides from the target's views now.

    Returns:
        The entry as ``published``.
    """
    target = qualified_name(entry.target, database)
    stage = qualified_name(entry.stage, database)
    if table_engine(client, database, entry.stage) is None:
        # The stage is dropped only after the load was recorded as published.
        current = read_entry(client, database, entry.target, entry.load_key) or entry
        if current.state in FINAL_STATES:
            return current
        if entry.mode == WriteMode.REPLACE and not swap_happened(client, database, entry):
            done = entry.moved(ABANDONED, owner="", note="its stage is gone; nothing swapped")
            write_entry(client, database, done)
            return done
    elif entry.mode == WriteMode.REPLACE:
        if not swap_happened(client, database, entry):
            kill_point_for_tests("publishing:before_swap")
            client.command(f"EXCHANGE TABLES {target} AND {stage}")
            kill_point_for_tests("publishing:after_swap")
    else:
        if through_views is None:
            through_views = bool(materialized_views(client, database, entry.target))
        if through_views:
            columns = ", ".join(_insertable(client, database, entry.stage))
            insert_settings = _publish_insert_settings(client)
        staged = active_partitions(client, database, entry.stage)
        empty: list[str] = []
        replace_settings: dict[str, object] = {}
        if entry.mode == WriteMode.REPLACE_PARTITIONS:
            # The window's partitions the load has no rows for are replaced from the stage
            # too, which empties them; a finisher whose stage is gone fails instead of
            # emptying a partition that a later load wrote.
            empty = sorted(set(_replaced(client, database, entry.stage)) - set(staged))
            # Only matters where the stage has no rows of the partition: the empty ones.
            replace_settings = _empty_replace_settings(client) if empty else {}
        try:
            for count, partition in enumerate([*staged, *empty], 1):
                quoted = _literal(partition)
                if entry.mode == WriteMode.REPLACE_PARTITIONS:
                    _aligned(
                        client,
                        database,
                        entry,
                        f"ALTER TABLE {target} REPLACE PARTITION ID '{quoted}' FROM {stage}",
                        replace_settings,
                    )
                elif through_views:
                    token = f"{entry.load_key}:{partition}"
                    client.command(
                        f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} "
                        f"WHERE _partition_id = '{quoted}'",
                        settings={**insert_settings, "insert_deduplication_token": token},
                    )
                    client.command(f"ALTER TABLE {stage} DROP PARTITION ID '{quoted}'")
                else:
                    _aligned(
                        client,
                        database,
                        entry,
                        f"ALTER TABLE {stage} MOVE PARTITION ID '{quoted}' TO TABLE {target}",
                    )
                kill_point_for_tests(f"publishing:partition:{count}")
        except Exception:
            # Another finisher of this load (its owner, a retry, the next load of the table)
            # published it and dropped the stage meanwhile: nothing is left to do.
            settled = _stage_gone(client, database, entry)
            if settled is None:
                raise
            return settled
    done = entry.moved(PUBLISHED, owner="")
    write_entry(client, database, done)
    kill_point_for_tests("published:before_cleanup")
    restore_comment(client, database, done)
    drop_work_table(client, database, entry.stage)
    return done


def recover_target(
    client: Client,
    database: str,
    target: str,
    *,
    exclusive: bool,
    keep: str = "",
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Finish or undo what other loads of ``target`` left, and drop its orphan work tables.

    Args:
        client: Open client.
        database: The target's database (holds the ledger).
        target: Target table name.
        exclusive: The caller holds the embedded engine's lock, so no other load runs.
        keep: The load key of the caller's own load, left alone.
        log: Receives one line per action.

    Returns:
        What was done, one line per action.
    """
    done: list[str] = []
    tables = [w for w in work_tables(client, database, target) if w.table == target[:150]]
    entries = read_entries_by_keys(
        client, database, [w.key for w in tables if not w.legacy], target=target
    )
    views: bool | None = None
    for work in tables:
        if work.key == keep and not work.legacy:
            continue
        entry = None if work.legacy else entries.get(work.key)
        where = f"{database}.{target}"
        if entry is None:
            # A work table of the previous scheme, or one whose ledger row expired.
            if exclusive or (work.age_seconds is not None and work.age_seconds > LEASE_SECONDS):
                drop_work_table(client, database, work.name)
                done.append(f"dropped orphan table {database}.{work.name} ({work.rows} rows)")
            continue
        what = f"load {entry.load_id} into {where} (run {entry.run_id}, owner {entry.owner})"
        if entry.state in FINAL_STATES:
            drop_work_table(client, database, work.name)
            done.append(f"{what} was {entry.state}; dropped its leftover stage {work.name}")
        elif entry.state == PUBLISHING:
            if entry.mode == WriteMode.REPLACE and not (
                swap_happened(client, database, entry) or owner_is_dead(entry, exclusive=exclusive)
            ):
                continue  # its owner may be about to swap
            if views is None:
                views = bool(materialized_views(client, database, target))
            finish_publishing(client, database, entry, through_views=views)
            done.append(f"{what} was left publishing: finished (rolled forward)")
        elif owner_is_dead(entry, exclusive=exclusive):
            drop_work_table(client, database, work.name)
            note = f"undone by {this_owner()}: owner {entry.owner} is gone"
            write_entry(client, database, entry.moved(ABANDONED, owner="", note=note))
            done.append(f"{what} was left {entry.state}: undone (the table was not changed)")
    if log is not None:
        for line in done:
            log(line)
    return done
