"""The migration lock: a claim row in the state table, kept alive while a command runs.

On the embedded engine the engine's own directory lock already serialises processes, so other
claims are stale by definition; on a server a lease is renewed in the background.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from dataproc_dagster.clickhouse.connection import ClickHouseConnection
from dataproc_dagster.migrations.config import MigrationSettings
from dataproc_dagster.migrations.state import LeaseKeeper, Owner, StateTable, new_owner
from dataproc_dagster.migrations.status import LockHolder

_logger = logging.getLogger(__name__)
# On a server, how long a new claim waits for competing claims to show before it counts.
_SERVER_SETTLE_SECONDS = 1.0


class MigrationLock:
    """The lock of one migrations runner.

    Args:
        clickhouse: The connection the runner uses.
        settings: Lock TTL, heartbeat and timeout.
        run_id: The Dagster run driving the runner, recorded with its claim.
        log: Where progress messages go.
    """

    def __init__(
        self,
        clickhouse: ClickHouseConnection,
        settings: MigrationSettings,
        run_id: str,
        log: Callable[[str], None],
    ) -> None:
        self.clickhouse = clickhouse
        self.settings = settings
        self.run_id = run_id
        self._log = log
        self._claimed_at = 0.0  # when this runner last wrote its lock claim (monotonic)

    def holders(self, state: StateTable) -> list[LockHolder]:
        """Who claims the migration lock (one per unreleased claim) and whether each is alive."""
        found = []
        for owner_id, expiry, valid in state.unreleased_claims():
            owner = Owner.parse(owner_id)
            alive: bool | None
            if self.clickhouse.is_embedded and owner.pid != os.getpid():
                # This process holds the engine's file lock: no other process is running.
                alive = False
                text = "not running (this process holds the embedded engine), claim is stale"
            elif owner.process_alive() is False:
                alive, text = False, "its process is gone, claim is stale"
            elif not valid:
                alive, text = False, "its lease expired without renewal, claim is stale"
            else:
                alive = True if owner.process_alive() else None
                until = f" until {expiry:%H:%M:%S} UTC" if expiry else ""
                text = ("alive" if alive else "on another host") + f", lease valid{until}"
            found.append(
                LockHolder(
                    owner=owner.describe(),
                    host=owner.host,
                    pid=owner.pid,
                    run=owner.run,
                    alive=alive,
                    state=text,
                )
            )
        return found

    def _release_stale_claims(self, state: StateTable) -> None:
        """On the embedded engine, withdraw the claims of other processes: holding the engine's
        file lock proves none of them is running."""
        for owner_id, _expiry, _valid in state.unreleased_claims():
            owner = Owner.parse(owner_id)
            if owner.pid != os.getpid() or not owner.on_this_host:
                state.release_lock(owner_id)
                self._log(
                    f"released the stale migration lock claim of {owner.describe()} "
                    "(that process is not running)"
                )

    def heartbeat(self, state: StateTable, owner: str) -> None:
        """Refresh the lock claim once a quarter of its lifetime has passed."""
        ttl = self.settings.migrations_lock_ttl
        if time.monotonic() - self._claimed_at > ttl / 4:
            state.claim_lock(owner, ttl)
            self._claimed_at = time.monotonic()

    @contextmanager
    def held(self, state: StateTable) -> Iterator[str]:
        """Hold the migration lock for the block; yields the owner id, to refresh the claim."""
        state.ensure()
        owner = new_owner(self.run_id)
        embedded = self.clickhouse.is_embedded
        if embedded:
            self._release_stale_claims(state)
        ttl = self.settings.migrations_lock_ttl
        state.acquire_lock(
            owner,
            ttl=ttl,
            timeout=self.settings.migrations_lock_timeout,
            settle=0.0 if embedded else _SERVER_SETTLE_SECONDS,
        )
        self._claimed_at = time.monotonic()
        lease: AbstractContextManager[Any] = (
            nullcontext()
            if embedded  # nobody else can reach the engine while this process holds it
            else LeaseKeeper(
                lambda: self.clickhouse.get_client(step="migrations lock"),
                state,
                owner,
                ttl=ttl,
                interval=self.settings.migrations_lock_heartbeat,
                warn=_logger.warning,
            )
        )
        try:
            with lease:
                yield owner
        finally:
            state.release_lock(owner)
