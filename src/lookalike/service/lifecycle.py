"""Lifecycle sweeps: expiry notices, auto-renew, expiry and release, run by a scheduler in the server.

A sweep is idempotent: notices carry dedupe keys, state moves are conditional updates (only one racing
process wins each), and auto-renew orders use a deterministic idempotency key. A lease in the database
keeps a second process from sweeping at the same time; even without it nothing would happen twice.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.billing_records import SweepCandidate
from lookalike.domain.errors import LookalikeError
from lookalike.domain.lifecycle import InstanceState, due_notices, state_at
from lookalike.service.billing.ports import BillingStore
from lookalike.service.billing.subscriptions import Subscriptions
from lookalike.storage.locks import LockStore
from lookalike.vectors.manager import IndexManager

log = logging.getLogger(__name__)
LEASE_NAME = "lifecycle-sweep"
LEASE_SECONDS = 120
# The most a demo clock moves in one step: ten years; more is a typo, and dates past 9999 do not exist.
MAX_CLOCK_STEP = timedelta(days=3660)


@dataclass
class SweepReport:
    ran: bool = True
    notices: int = 0
    renewed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)


class LifecycleService:
    def __init__(
        self,
        store: BillingStore,
        clock: Clock,
        subscriptions: Subscriptions,
        indexes: IndexManager,
        locks: LockStore,  # the job_leases table; Redis when configured
    ) -> None:
        self._store = store
        self._locks = locks
        self._clock = clock
        self._subscriptions = subscriptions
        self._indexes = indexes
        self._holder = f"sweeper-{secrets.token_hex(6)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def clock_can_move(self) -> bool:
        """A demo server's clock (`serve --demo-clock`) or a test's can be moved forward; a real one not."""
        return hasattr(self._clock, "advance")

    def advance_clock(self, step: timedelta) -> SweepReport:
        """Move a demo clock forward, then sweep: what the background sweep would do over that time, now."""
        advance = getattr(self._clock, "advance", None)
        if advance is None:
            raise LookalikeError(e.NO_PERMISSION, "This server's clock is real; start it with --demo-clock.")
        if step < timedelta(0):
            raise LookalikeError(e.INVALID_PARAMETER, "The clock only moves forward.")
        if step > MAX_CLOCK_STEP:
            raise LookalikeError(e.INVALID_PARAMETER, f"Move at most {MAX_CLOCK_STEP.days} days at a time.")
        advance(step)
        return self.sweep()

    def sweep(self) -> SweepReport:
        if not self._locks.acquire(LEASE_NAME, self._holder, LEASE_SECONDS):
            return SweepReport(ran=False)
        try:
            with self._store.reading() as tx:
                rows = tx.instances_to_sweep()
            report = SweepReport()
            for row in rows:
                try:
                    self._sweep_one(row, report)
                except Exception:  # one broken instance must not stop the others' sweeps
                    log.exception("sweeping instance %s failed", row.id)
        finally:
            self._locks.release(LEASE_NAME, self._holder)  # hand the lease back
        return report

    def _sweep_one(self, row: SweepCandidate, report: SweepReport) -> None:
        if row.paid_until is None:
            return
        paid_until = row.paid_until
        now = self._clock.now()
        with self._store.writing() as tx:
            for days in due_notices(now, paid_until):
                if tx.add_event(
                    account_id=row.account_id,
                    instance_id=row.id,
                    kind=f"expiring_in_{days}d",
                    data={"name": row.name, "paid_until": paid_until.isoformat()},
                    now=now,
                    dedupe_key=f"notice:{row.id}:{paid_until.isoformat()}:{days}",
                ):
                    report.notices += 1
        state = state_at(now, paid_until)
        if state is InstanceState.ACTIVE:
            return
        if row.auto_renew and state is InstanceState.EXPIRED and self._auto_renew(row, paid_until):
            report.renewed.append(row.name)
            return
        with self._store.writing() as tx:
            # Judge expiry on the locked row, not on `row` read before: a renewal (the tenant's, or another
            # sweeper's auto-renew) may have committed since, and must not be marked expired.
            locked = tx.lock_instance(row.id)
            locked_until = locked.paid_until if locked is not None else None
            if (
                locked_until is not None
                and state_at(now, locked_until) is not InstanceState.ACTIVE
                and tx.move_status(row.id, "active", "expired", now)
            ):
                tx.add_event(
                    account_id=row.account_id,
                    instance_id=row.id,
                    kind="expired",
                    data={"name": row.name, "paid_until": locked_until.isoformat()},
                    now=now,
                    dedupe_key=f"expired:{row.id}:{locked_until.isoformat()}",
                )
                report.expired.append(row.name)
        if state is InstanceState.RELEASED:
            self._release(row, report)

    def _auto_renew(self, row: SweepCandidate, paid_until: datetime) -> bool:
        with self._store.reading() as tx:
            sub = tx.last_subscription(row.id)
        if sub is None:
            return False
        unit = row.auto_renew_unit or sub.period_unit
        count = row.auto_renew_count or sub.period_count
        try:
            self._subscriptions.renew_automatically(
                row.account_id,
                row.id,
                sub.package_id,
                unit,
                count,
                key=f"auto-renew:{row.id}:{paid_until.isoformat()}",
            )
            return True
        except LookalikeError as exc:
            log.info("auto-renew of %s failed: %s", row.id, exc.code)
            with self._store.writing() as tx:
                tx.add_event(
                    account_id=row.account_id,
                    instance_id=row.id,
                    kind="auto_renew_failed",
                    data={"code": exc.code, "message": exc.message},
                    now=self._clock.now(),
                    dedupe_key=f"auto-renew-failed:{row.id}:{paid_until.isoformat()}",
                )
            return False

    def _release(self, row: SweepCandidate, report: SweepReport) -> None:
        """Purge the pictures, vectors and change log; free the name. Orders and the ledger stay."""
        now = self._clock.now()
        with self._store.writing() as tx:
            locked = tx.lock_instance(row.id)
            if locked is None or locked.status == "released":
                return
            paid_until = locked.paid_until
            if paid_until is None or state_at(now, paid_until) is not InstanceState.RELEASED:
                return  # renewed in the meantime
            tx.purge_instance_data(row.id)
            tx.move_status(row.id, locked.status, "released", now)
            tx.add_event(
                account_id=row.account_id,
                instance_id=row.id,
                kind="released",
                data={"name": row.name, "paid_until": paid_until.isoformat()},
                now=now,
                dedupe_key=f"released:{row.id}",
            )
        self._indexes.drop(row.id)
        report.released.append(row.name)

    # --- scheduler ---
    def start(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.sweep()
                except Exception:
                    log.exception("lifecycle sweep failed")

        self._thread = threading.Thread(target=loop, name="lifecycle-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
