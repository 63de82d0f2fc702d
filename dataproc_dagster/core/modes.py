"""The load options every layer names: how a load writes, and what it does with new columns.

Declared here, below the loader and the pipeline builder that both read them.
"""

from __future__ import annotations

from enum import StrEnum


class WriteMode(StrEnum):
    """How a load writes into its table (docs/loading.md)."""

    APPEND = "append"
    REPLACE = "replace"
    REPLACE_PARTITIONS = "replace_partitions"
    UPSERT = "upsert"


class DriftPolicy(StrEnum):
    """What a load does with columns of the data that the table lacks."""

    EVOLVE = "evolve"  # add them to the table
    FREEZE = "freeze"  # fail the load
    DISCARD = "discard"  # drop them from the data
