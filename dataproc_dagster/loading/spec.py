"""What a load is (:class:`LoadSpec`) and what it did (:class:`LoadResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dataproc_dagster.clickhouse.sql import qualified_name
from dataproc_dagster.core.choices import parse_choice
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.modes import DriftPolicy, WriteMode

VERSION_COLUMN = "_version"


@dataclass(frozen=True)
class LoadSpec:
    """How to write into the target table.

    Attributes:
        database: Target database.
        table: Target table.
        mode: The write mode (a :class:`WriteMode` or its string value).
        order_by: Sorting key used when the loader creates the table.
        partition_by: Partition expression used when the loader creates the table
            (required for ``replace_partitions``).
        key_columns: Key of ``upsert`` (also its sorting key).
        version_column: Column deciding the latest row in ``upsert``; when ``None`` the loader
            adds ``_version`` (load time in ns).
        schema_drift: ``freeze`` (fail), ``evolve`` (add columns) or ``discard`` (drop them)
            (a :class:`DriftPolicy` or its string value).
        create_table: Create the table from the data's schema when it is missing.
        allow_empty_replace: Let ``replace`` with no rows empty the table, and a partitioned
            ``replace_partitions`` run with no rows empty its window (otherwise skipped).
        optimize_after_upsert: Run ``OPTIMIZE TABLE ... FINAL`` after an upsert.
    """

    database: str
    table: str
    mode: WriteMode = WriteMode.APPEND
    order_by: tuple[str, ...] = ()
    partition_by: str | None = None
    key_columns: tuple[str, ...] = ()
    version_column: str | None = None
    schema_drift: DriftPolicy = DriftPolicy.FREEZE
    create_table: bool = True
    allow_empty_replace: bool = False
    optimize_after_upsert: bool = False

    def __post_init__(self) -> None:
        # Strings (run config, user code) become the enums here, once; unknown ones fail.
        where = f"{self.database}.{self.table}"
        mode = parse_choice(WriteMode, self.mode, what="write mode", source=where)
        drift = parse_choice(
            DriftPolicy, self.schema_drift, what="schema_drift policy", source=where
        )
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "schema_drift", drift)

    def validate(self) -> None:
        """Check the combination of options.

        Raises:
            ConfigError: Naming the option and the accepted values.
        """
        where = f"{self.database}.{self.table}"
        if self.mode == WriteMode.UPSERT and not self.key_columns:
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
    recovered: list[str] = field(default_factory=list)
