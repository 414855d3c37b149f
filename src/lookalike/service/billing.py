"""Billing use cases: catalogue, quotes, orders (buy, trial, renew, change, grant), top-ups, auto-renew,
and what the data plane asks of billing: "is this instance available, and what are its limits now?".

Every money-changing call runs in ONE database transaction that also records its idempotency key, so a
call either happened completely (and replays) or not at all. Balance checks and charges happen inside
that transaction with the account locked (SQLite: BEGIN IMMEDIATE; PostgreSQL: SELECT … FOR UPDATE).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.billing import (
    Cycle,
    LineItem,
    Quote,
    quote_buy,
    quote_change,
    quote_renewal,
    quote_trial,
)
from lookalike.domain.calendar import PeriodUnit
from lookalike.domain.catalogue import (
    Catalogue,
    Package,
    check_period,
    default_catalogue_text,
    load_catalogue_json,
)
from lookalike.domain.errors import LookalikeError
from lookalike.domain.lifecycle import InstanceState, release_at, state_at
from lookalike.domain.models import Account, Instance, ServiceType
from lookalike.domain.money import MAX_AMOUNT, Money, format_amount
from lookalike.domain.validation import validate_instance_name
from lookalike.storage import billing_repo as repo
from lookalike.storage.accounts_repo import AccountRepository, InstanceRepository
from lookalike.storage.db import write_transaction
from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import accounts

DEFAULT_TRIAL_SEATS = 100


class CatalogueSource:
    """The operator's catalogue file (or the packaged default), re-read on `reload()`."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._catalogue = self._load()

    def _load(self) -> Catalogue:
        try:
            text = self._path.read_text(encoding="utf-8") if self._path else default_catalogue_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise LookalikeError(
                e.INVALID_CATALOGUE, f"The catalogue file {self._path} cannot be read: {exc}"
            ) from None
        return load_catalogue_json(text)

    def reload(self) -> Catalogue:
        fresh = self._load()  # a bad file raises InvalidCatalogue and the old catalogue stays
        with self._lock:
            self._catalogue = fresh
        return fresh

    @property
    def catalogue(self) -> Catalogue:
        with self._lock:
            return self._catalogue


class PaymentProvider:
    """Where top-up money comes from. For now the operator records payments received out of band;
    a card or invoice provider plugs in here and returns its own reference."""

    def confirm_top_up(self, account_id: str, amount: Money, reference: str | None) -> str:
        return reference or f"manual-{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Availability:
    state: InstanceState
    capacity: int
    qps: int
    package_id: str | None


def _request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def line_json(line: LineItem, exponent: int) -> dict[str, Any]:
    return {
        "description": line.description,
        "package_id": line.package_id,
        "period_start": line.period_start.isoformat(),
        "period_end": line.period_end.isoformat(),
        "proration": None
        if line.proration is None
        else f"{line.proration.numerator}/{line.proration.denominator}",
        "proration_factor": None if line.proration is None else round(float(line.proration), 6),
        "amount": line.amount.amount,
        "amount_text": format_amount(line.amount.amount, line.amount.currency, exponent),
        "currency": line.amount.currency,
    }


def quote_json(quote: Quote, exponent: int) -> dict[str, Any]:
    return {
        "kind": quote.kind,
        "total": quote.total.amount,
        "total_text": format_amount(quote.total.amount, quote.total.currency, exponent),
        "currency": quote.total.currency,
        "effective_at": quote.effective_at.isoformat(),
        "cycle": None
        if quote.new_cycle is None
        else {
            "start": quote.new_cycle.start.isoformat(),
            "end": quote.new_cycle.end.isoformat(),
            "unit": quote.new_cycle.unit.value,
            "count": quote.new_cycle.count,
        },
        "lines": [line_json(line, exponent) for line in quote.lines],
    }


class BillingService:
    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        catalogue: CatalogueSource,
        accounts: AccountRepository,
        instances: InstanceRepository,
        payments: PaymentProvider | None = None,
        default_trial_seats: int = DEFAULT_TRIAL_SEATS,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._catalogue = catalogue
        self._accounts = accounts
        self._instances = instances
        self._payments = payments or PaymentProvider()
        self._default_trial_seats = default_trial_seats

    # --- catalogue ---
    @property
    def exponent(self) -> int:
        return self._catalogue.catalogue.exponent

    @property
    def currency(self) -> str:
        return self._catalogue.catalogue.currency

    def catalogue_for(self, account_id: str | None, conn: Connection | None = None) -> Catalogue:
        """Public packages plus the private quotations made for this account."""
        base = self._catalogue.catalogue
        if conn is None:
            with self._engine.connect() as own:
                return self.catalogue_for(account_id, own)
        result = base
        for row in repo.private_packages_for(conn, account_id):
            result = result.with_private(
                Package(
                    id=row.id,
                    capacity=int(row.capacity),
                    qps=int(row.qps),
                    monthly=int(row.monthly),
                    yearly=int(row.yearly),
                    currency=row.currency,
                    private_for=row.account_id,
                )
            )
        return result

    def reload_catalogue(self) -> Catalogue:
        return self._catalogue.reload()

    # --- data plane ---
    def availability(self, instance: Instance, conn: Connection | None = None) -> Availability:
        now = self._clock.now()
        if conn is None:
            with self._engine.connect() as own:
                return self.availability(instance, own)
        if instance.status == "released":
            return Availability(InstanceState.RELEASED, 0, 0, None)
        paid_until = instance.expires_at
        state = InstanceState.ACTIVE if paid_until is None else state_at(now, paid_until)
        sub = repo.subscription_at(conn, instance.id, now) or repo.last_subscription(conn, instance.id)
        if sub is None:
            return Availability(state, instance.capacity, instance.search_qps, None)
        return Availability(state, sub.capacity, sub.qps, sub.package_id)

    def capacity_for_adds(self, instance: Instance) -> int:
        """An add must fit the package held now AND every package already paid for a later cycle,
        so a renewal into a smaller package can never start over capacity."""
        now = self._clock.now()
        with self._engine.connect() as conn:
            held = repo.subscription_at(conn, instance.id, now)
            capacities = [
                s.capacity for s in repo.subscriptions_of(conn, instance.id) if s.effective_to > now
            ]
        if held is None and not capacities:
            return instance.capacity
        return min(capacities) if capacities else instance.capacity

    def effective(self, instance: Instance) -> Instance:
        """The instance with the capacity and QPS of the package it holds right now, and its state."""
        found = self.availability(instance)
        return replace(instance, capacity=found.capacity, search_qps=found.qps, status=found.state.value)

    # --- quotes ---
    def quote(
        self,
        account: Account,
        kind: str,
        *,
        package_id: str | None = None,
        unit: str = "month",
        count: int = 1,
        instance_name: str | None = None,
    ) -> Quote:
        with self._engine.connect() as conn:
            return self._quote(conn, account, kind, package_id, unit, count, instance_name)

    def _quote(
        self,
        conn: Connection,
        account: Account,
        kind: str,
        package_id: str | None,
        unit: str,
        count: int,
        instance_name: str | None,
    ) -> Quote:
        now = self._clock.now()
        catalogue = self.catalogue_for(account.id, conn)
        if kind == "trial":
            return quote_trial(catalogue.trial_package(), now)
        if kind == "buy":
            return quote_buy(
                catalogue.get_for(_required(package_id, "package_id"), account.id), unit, count, now
            )
        instance = self._owned_instance(account, _required(instance_name, "instance"), to_order=True)
        stored = self._instances.count_images(instance.id)
        if kind == "renew":
            package = catalogue.get_for(_required(package_id, "package_id"), account.id)
            paid_until = instance.expires_at or now
            expired = state_at(now, paid_until) is not InstanceState.ACTIVE
            return quote_renewal(package, unit, count, now, paid_until, expired, stored)
        if kind == "change":
            sub = repo.subscription_at(conn, instance.id, now)
            if sub is None or (instance.expires_at is not None and now >= instance.expires_at):
                raise LookalikeError(
                    e.INSTANCE_STATUS_ERROR, "Only an active instance can change its package."
                )
            old = self._package_of(catalogue, sub)
            new = catalogue.get_for(_required(package_id, "package_id"), account.id)
            cycle = Cycle(sub.cycle_start, sub.cycle_end, PeriodUnit(sub.period_unit), sub.period_count)
            return quote_change(old, new, cycle, now, stored)
        raise LookalikeError(
            e.INVALID_PARAMETER, f"Unknown order kind {kind!r}: buy, trial, renew or change."
        )

    def _package_of(self, catalogue: Catalogue, sub: repo.SubscriptionRow) -> Package:
        try:
            return catalogue.get(sub.package_id)
        except LookalikeError:
            raise LookalikeError(
                e.INVALID_PACKAGE,
                f"The current package {sub.package_id!r} is no longer in the catalogue; "
                "renew into a current one.",
            ) from None

    def _owned_instance(self, account: Account, name: str, *, to_order: bool = False) -> Instance:
        """The named instance if `account` may see it (its owner, or the operator). `to_order`: only the
        owner, since an order is paid from the ordering account's balance at its own catalogue's prices
        (the operator gives an instance time or size with a grant instead)."""
        instance = self._instances.get_by_name(name)
        if instance is None or (instance.account_id != account.id and not account.is_admin):
            raise LookalikeError(e.INVALID_INSTANCE, "The specified instance name is invalid.")
        if to_order and instance.account_id != account.id:
            raise LookalikeError(
                e.NO_PERMISSION, "Only the instance's owner can order for it (renew, change, auto-renew)."
            )
        return instance

    # --- the idempotent transaction every money-changing call runs in ---
    def _idempotent(
        self,
        account_id: str,
        key: str | None,
        request: dict[str, Any],
        work: Callable[[Connection], dict[str, Any]],
    ) -> dict[str, Any]:
        if not key or len(key) > 255 or "\x00" in key:  # NUL: PostgreSQL text cannot store it
            raise LookalikeError(
                e.IDEMPOTENCY_KEY_REQUIRED,
                "Money-changing calls need an Idempotency-Key (1-255 characters, no NUL).",
            )
        digest = _request_hash(request)
        for _attempt in range(2):
            try:
                with write_transaction(self._engine) as conn:
                    # Lock first, then look for the key: on PostgreSQL (READ COMMITTED) a same-key call that
                    # held the lock has committed its key by the time we get it, so we replay its result.
                    # Looking first let the waiter run `work` again and fail on the state the first call
                    # left (InstanceAlreadyExists, InsufficientBalance) instead of replaying.
                    conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())
                    stored = repo.find_idempotent(conn, account_id, key)
                    if stored is not None:
                        return self._replay(stored, digest)
                    body = work(conn)
                    repo.store_idempotent(conn, account_id, key, digest, 200, body, self._clock.now())
                    return body
            except IntegrityError:
                continue  # a concurrent call with the same key won the insert: replay its result
        with self._engine.connect() as conn:
            stored = repo.find_idempotent(conn, account_id, key)
        if stored is None:
            raise LookalikeError(
                e.INTERNAL_ERROR, "The order could not be recorded; retry with the same key."
            )
        return self._replay(stored, digest)

    @staticmethod
    def _replay(stored: repo.StoredResponse, digest: str) -> dict[str, Any]:
        if stored.request_hash != digest:
            raise LookalikeError(
                e.IDEMPOTENCY_CONFLICT, "This Idempotency-Key was used with different parameters."
            )
        return {**stored.body, "replayed": True}

    def _charge(
        self,
        conn: Connection,
        account_id: str,
        order_id: str,
        quote: Quote,
        now: datetime,
        max_total: int | None = None,
    ) -> None:
        """Apply an order's money: a charge needs the balance (no overdraft); a refund credits it.

        `max_total` is the total the customer confirmed: the order is re-priced here, inside the charging
        transaction (proration runs by the second, the catalogue may have been reloaded), and a total above
        it is refused whole, so nobody pays more than the price they agreed to."""
        amount = quote.total.amount
        if max_total is not None and amount > max_total:
            currency = quote.total.currency
            raise LookalikeError(
                e.PRICE_CHANGED,
                f"The price changed since the quote: the order now comes to "
                f"{format_amount(amount, currency, self.exponent)} {currency}, not the "
                f"{format_amount(max_total, currency, self.exponent)} {currency} you were quoted. "
                "Nothing was charged; review the new price and confirm again.",
            )
        if amount > 0:
            balance = repo.balance(conn, account_id, quote.total.currency)
            if balance < amount:
                raise LookalikeError(
                    e.INSUFFICIENT_BALANCE,
                    f"The order costs {format_amount(amount, quote.total.currency, self.exponent)} "
                    f"{quote.total.currency} but the balance is "
                    f"{format_amount(balance, quote.total.currency, self.exponent)}.",
                )
        if amount == 0:
            return
        kind, event = ("charge", "charged") if amount > 0 else ("refund", "refunded")
        # The ledger records money into the balance: a charge is negative, a refund positive.
        repo.append_ledger(
            conn,
            account_id=account_id,
            kind=kind,
            amount=-amount,
            currency=quote.total.currency,
            order_id=order_id,
            now=now,
        )
        repo.add_event(
            conn,
            account_id=account_id,
            instance_id=None,
            kind=event,
            data={"order_id": order_id, "amount": abs(amount)},
            now=now,
        )

    def _record_order(
        self,
        conn: Connection,
        account_id: str,
        instance_id: str | None,
        order_id: str,
        quote: Quote,
        now: datetime,
    ) -> dict[str, Any]:
        receipt = quote_json(quote, self.exponent)
        repo.insert_order(
            conn,
            order_id=order_id,
            account_id=account_id,
            instance_id=instance_id,
            kind=quote.kind,
            amount=quote.total.amount,
            currency=quote.total.currency,
            receipt=receipt,
            now=now,
        )
        return {"order_id": order_id, "instance_id": instance_id, **receipt}

    @staticmethod
    def _subscription(
        instance_id: str, order_id: str, package: Package, quote: Quote, effective_from: datetime
    ) -> repo.SubscriptionRow:
        cycle = quote.new_cycle
        assert cycle is not None
        return repo.SubscriptionRow(
            id=0,
            instance_id=instance_id,
            order_id=order_id,
            package_id=package.id,
            capacity=package.capacity,
            qps=package.qps,
            cycle_price=package.price(cycle.unit, cycle.count).amount,
            currency=package.currency,
            cycle_start=cycle.start,
            cycle_end=cycle.end,
            period_unit=cycle.unit.value,
            period_count=cycle.count,
            effective_from=effective_from,
            effective_to=cycle.end,
        )

    # --- orders ---
    def buy(
        self,
        account: Account,
        name: str,
        package_id: str,
        *,
        unit: str = "month",
        count: int = 1,
        service_type: ServiceType = ServiceType.PRODUCT,
        idempotency_key: str | None,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        """Buy a package: creates the instance. `max_total`: refuse (PriceChanged) if it now costs more.

        `max_total` stays out of the idempotency request hash: a retry of the same choice replays."""
        request = {
            "op": "buy",
            "name": name,
            "package_id": package_id,
            "unit": unit,
            "count": count,
            "service_type": int(service_type),
        }
        validate_instance_name(name)
        check_period(unit, count)

        def work(conn: Connection) -> dict[str, Any]:
            now = self._clock.now()
            package = self.catalogue_for(account.id, conn).get_for(package_id, account.id)
            quote = quote_buy(package, unit, count, now)
            return self._open_instance(
                conn, account, name, package, quote, service_type, now, max_total=max_total
            )

        return self._idempotent(account.id, idempotency_key, request, work)

    def trial(
        self,
        account: Account,
        name: str,
        *,
        service_type: ServiceType = ServiceType.PRODUCT,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """The free one-month trial of the trial package: once per account, while seats last."""
        request = {"op": "trial", "name": name, "service_type": int(service_type)}
        validate_instance_name(name)

        def work(conn: Connection) -> dict[str, Any]:
            now = self._clock.now()
            package = self._catalogue.catalogue.trial_package()
            quote = quote_trial(package, now)
            if repo.has_trial(conn, account.id):
                raise LookalikeError(e.TRIAL_UNAVAILABLE, "This account has already used its free trial.")
            if not repo.claim_trial_seat(conn, self._default_trial_seats):
                raise LookalikeError(
                    e.TRIAL_UNAVAILABLE, "No free-trial seats are left; buy a package instead."
                )
            body = self._open_instance(conn, account, name, package, quote, service_type, now)
            repo.record_trial(conn, account.id, body["instance_id"], now)
            repo.append_ledger(
                conn,
                account_id=account.id,
                kind="trial",
                amount=0,
                currency=package.currency,
                order_id=body["order_id"],
                now=now,
            )
            return body

        return self._idempotent(account.id, idempotency_key, request, work)

    def _open_instance(
        self,
        conn: Connection,
        account: Account,
        name: str,
        package: Package,
        quote: Quote,
        service_type: ServiceType,
        now: datetime,
        *,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        assert quote.new_cycle is not None
        order_id = repo.new_order_id()
        instance_id = self._instances.insert(
            conn,
            account_id=account.id,
            name=name,
            service_type=service_type,
            capacity=package.capacity,
            search_qps=package.qps,
            paid_until=quote.new_cycle.end,
            now=now,
        )
        self._charge(conn, account.id, order_id, quote, now, max_total)
        repo.insert_subscription(conn, self._subscription(instance_id, order_id, package, quote, now))
        body = self._record_order(conn, account.id, instance_id, order_id, quote, now)
        repo.add_event(
            conn,
            account_id=account.id,
            instance_id=instance_id,
            kind="instance_created",
            data={"name": name, "package_id": package.id, "order_id": order_id},
            now=now,
        )
        return {**body, "instance": name}

    def renew(
        self,
        account: Account,
        instance_name: str,
        package_id: str,
        *,
        unit: str = "month",
        count: int = 1,
        idempotency_key: str | None,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        """Renew for a period; `max_total` (not part of the request hash) as in `buy`."""
        request = {
            "op": "renew",
            "instance": instance_name,
            "package_id": package_id,
            "unit": unit,
            "count": count,
        }
        check_period(unit, count)
        instance = self._owned_instance(account, instance_name, to_order=True)

        def work(conn: Connection) -> dict[str, Any]:
            return self._renew_locked(
                conn, account.id, instance.id, package_id, unit, count, automatic=False, max_total=max_total
            )

        return self._idempotent(account.id, idempotency_key, request, work)

    def _renew_locked(
        self,
        conn: Connection,
        account_id: str,
        instance_id: str,
        package_id: str,
        unit: str,
        count: int,
        *,
        automatic: bool,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        now = self._clock.now()
        row = repo.lock_instance(conn, instance_id)
        if row is None or row.status == "released":
            raise LookalikeError(e.INVALID_INSTANCE, "The instance has been released.")
        paid_until = as_utc(row.expires_at) if row.expires_at else now
        state = state_at(now, paid_until)
        if state is InstanceState.RELEASED:
            raise LookalikeError(e.INSTANCE_STATUS_ERROR, "The instance is past its retention period.")
        package = self.catalogue_for(account_id, conn).get_for(package_id, account_id)
        stored = self._instances.count_images(instance_id)
        if automatic and row.status == "active":
            # Auto-renew at expiry keeps the cycles seamless: the new one starts where the old one ended,
            # however late the sweep ran.
            quote = quote_renewal(package, unit, count, paid_until, paid_until, True, stored)
        else:
            expired = state is not InstanceState.ACTIVE
            quote = quote_renewal(package, unit, count, now, paid_until, expired, stored)
        assert quote.new_cycle is not None
        order_id = repo.new_order_id()
        self._charge(conn, account_id, order_id, quote, now, max_total)
        repo.insert_subscription(
            conn, self._subscription(instance_id, order_id, package, quote, quote.new_cycle.start)
        )
        repo.set_paid_until(conn, instance_id, quote.new_cycle.end, "active")
        body = self._record_order(conn, account_id, instance_id, order_id, quote, now)
        repo.add_event(
            conn,
            account_id=account_id,
            instance_id=instance_id,
            kind="renewed",
            data={
                "order_id": order_id,
                "package_id": package.id,
                "automatic": automatic,
                "cycle_start": quote.new_cycle.start.isoformat(),
                "cycle_end": quote.new_cycle.end.isoformat(),
            },
            now=now,
        )
        return body

    def renew_automatically(
        self, account_id: str, instance_id: str, package_id: str, unit: str, count: int, *, key: str
    ) -> dict[str, Any]:
        """The sweep's auto-renew: charges the balance like a tenant's renewal, keyed per cycle end."""
        request = {
            "op": "auto-renew",
            "instance_id": instance_id,
            "package_id": package_id,
            "unit": unit,
            "count": count,
        }

        def work(conn: Connection) -> dict[str, Any]:
            return self._renew_locked(conn, account_id, instance_id, package_id, unit, count, automatic=True)

        return self._idempotent(account_id, key, request, work)

    def change(
        self,
        account: Account,
        instance_name: str,
        package_id: str,
        *,
        idempotency_key: str | None,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        """Upgrade or downgrade at once; the cycle stays; the prorated difference is charged or refunded.
        `max_total` (not in the request hash) as in `buy`: a smaller refund than quoted is refused too."""
        request = {"op": "change", "instance": instance_name, "package_id": package_id}
        instance = self._owned_instance(account, instance_name, to_order=True)

        def work(conn: Connection) -> dict[str, Any]:
            now = self._clock.now()
            repo.lock_instance(conn, instance.id)
            quote = self._quote(conn, account, "change", package_id, "month", 1, instance_name)
            sub = repo.subscription_at(conn, instance.id, now)
            assert sub is not None
            package = self.catalogue_for(account.id, conn).get_for(package_id, account.id)
            order_id = repo.new_order_id()
            self._charge(conn, account.id, order_id, quote, now, max_total)
            # The old package stops the moment the new one starts; the cycle's bounds stay.
            repo.end_subscription(conn, sub.id, now)
            repo.insert_subscription(
                conn,
                repo.SubscriptionRow(
                    id=0,
                    instance_id=instance.id,
                    order_id=order_id,
                    package_id=package.id,
                    capacity=package.capacity,
                    qps=package.qps,
                    cycle_price=package.price(sub.period_unit, sub.period_count).amount,
                    currency=package.currency,
                    cycle_start=sub.cycle_start,
                    cycle_end=sub.cycle_end,
                    period_unit=sub.period_unit,
                    period_count=sub.period_count,
                    effective_from=now,
                    effective_to=sub.cycle_end,
                ),
            )
            body = self._record_order(conn, account.id, instance.id, order_id, quote, now)
            repo.add_event(
                conn,
                account_id=account.id,
                instance_id=instance.id,
                kind="package_changed",
                data={"order_id": order_id, "from": sub.package_id, "to": package.id},
                now=now,
            )
            return body

        return self._idempotent(account.id, idempotency_key, request, work)

    def grant(
        self,
        account_id: str,
        name: str,
        *,
        capacity: int,
        qps: int,
        months: int = 12,
        service_type: ServiceType = ServiceType.PRODUCT,
    ) -> Instance:
        """Operator-made instance at no charge: a private package of any size held for `months`."""
        validate_instance_name(name)
        if capacity < 1 or qps < 1:
            raise LookalikeError(e.INVALID_PARAMETER, "Capacity and QPS must be at least 1.")
        account = self._accounts.get_account(account_id)
        if account is None:
            raise LookalikeError(e.ACCOUNT_NOT_FOUND, f"No account {account_id!r}.")
        now = self._clock.now()
        package = Package(
            id=f"grant-{secrets.token_hex(6)}",
            capacity=capacity,
            qps=qps,
            monthly=0,
            yearly=0,
            currency=self.currency,
            private_for=account_id,
        )
        quote = quote_buy(package, PeriodUnit.MONTH, months, now)
        with write_transaction(self._engine) as conn:
            repo.insert_private_package(
                conn,
                package_id=package.id,
                account_id=account_id,
                capacity=capacity,
                qps=qps,
                monthly=0,
                yearly=0,
                currency=package.currency,
                now=now,
            )
            body = self._open_instance(
                conn, account, name, package, replace(quote, kind="grant"), service_type, now
            )
        instance = self._instances.get(body["instance_id"])
        assert instance is not None
        return instance

    def set_auto_renew(
        self,
        account: Account,
        instance_name: str,
        enabled: bool,
        *,
        unit: str = "month",
        count: int = 1,
    ) -> dict[str, Any]:
        """Renew automatically at expiry, for `count` `unit`s of the package held then (change the package
        first to renew into another one)."""
        instance = self._owned_instance(account, instance_name, to_order=True)
        if enabled:
            check_period(unit, count)
        with write_transaction(self._engine) as conn:
            repo.set_auto_renew(
                conn, instance.id, enabled, unit if enabled else None, count if enabled else None
            )
        return {
            "instance": instance_name,
            "auto_renew": enabled,
            "unit": unit,
            "count": count,
        }

    # --- money in ---
    def top_up(
        self, account_id: str, amount: int, *, reference: str | None = None, idempotency_key: str | None
    ) -> dict[str, Any]:
        if amount <= 0 or amount > MAX_AMOUNT:
            raise LookalikeError(
                e.INVALID_AMOUNT, f"A top-up is a positive amount of minor units, at most {MAX_AMOUNT}."
            )
        if self._accounts.get_account(account_id) is None:
            raise LookalikeError(e.ACCOUNT_NOT_FOUND, f"No account {account_id!r}.")
        currency = self.currency
        request = {"op": "topup", "account_id": account_id, "amount": amount, "reference": reference}

        def work(conn: Connection) -> dict[str, Any]:
            now = self._clock.now()
            confirmed = self._payments.confirm_top_up(account_id, Money(amount, currency), reference)
            order_id = repo.new_order_id()
            receipt = {
                "kind": "topup",
                "total": amount,
                "currency": currency,
                "reference": confirmed,
                "total_text": format_amount(amount, currency, self.exponent),
                "lines": [],
            }
            repo.insert_order(
                conn,
                order_id=order_id,
                account_id=account_id,
                instance_id=None,
                kind="topup",
                amount=amount,
                currency=currency,
                receipt=receipt,
                now=now,
            )
            repo.append_ledger(
                conn,
                account_id=account_id,
                kind="topup",
                amount=amount,
                currency=currency,
                order_id=order_id,
                now=now,
                reference=confirmed,
            )
            repo.add_event(
                conn,
                account_id=account_id,
                instance_id=None,
                kind="topped_up",
                data={"order_id": order_id, "amount": amount},
                now=now,
            )
            return {"order_id": order_id, **receipt, "balance": repo.balance(conn, account_id, currency)}

        # Top-ups are keyed under the paying account, so one key cannot collide across tenants.
        return self._idempotent(account_id, idempotency_key, request, work)

    def create_private_package(
        self,
        account_id: str,
        *,
        capacity: int,
        qps: int,
        monthly: int,
        yearly: int,
        package_id: str | None = None,
    ) -> Package:
        if self._accounts.get_account(account_id) is None:
            raise LookalikeError(e.ACCOUNT_NOT_FOUND, f"No account {account_id!r}.")
        package = Package(
            id=package_id or f"private-{secrets.token_hex(4)}",
            capacity=capacity,
            qps=qps,
            monthly=monthly,
            yearly=yearly,
            currency=self.currency,
            private_for=account_id,
        )
        try:
            with write_transaction(self._engine) as conn:
                if package.id in {p.id for p in self._catalogue.catalogue.packages}:
                    raise LookalikeError(e.INVALID_PACKAGE, f"Package id {package.id!r} is already taken.")
                repo.insert_private_package(
                    conn,
                    package_id=package.id,
                    account_id=account_id,
                    capacity=capacity,
                    qps=qps,
                    monthly=monthly,
                    yearly=yearly,
                    currency=package.currency,
                    now=self._clock.now(),
                )
        except IntegrityError:
            raise LookalikeError(e.INVALID_PACKAGE, f"Package id {package.id!r} is already taken.") from None
        return package

    def set_trial_seats(self, total: int) -> dict[str, int]:
        if total < 0:
            raise LookalikeError(e.INVALID_PARAMETER, "Trial seats cannot be negative.")
        with write_transaction(self._engine) as conn:
            used = repo.get_setting(conn, repo.TRIAL_SEATS_USED, 0)
            if total < used:
                # Seats already taken stay taken; a total equal to `used` is how the trial is closed.
                raise LookalikeError(
                    e.INVALID_PARAMETER, f"{used} trial seats are already used; the total cannot be lower."
                )
            repo.put_setting(conn, repo.TRIAL_SEATS_TOTAL, total)
        return {"total": total, "used": used, "left": max(0, total - used)}

    def trial_seats(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            total = repo.get_setting(conn, repo.TRIAL_SEATS_TOTAL, self._default_trial_seats)
            used = repo.get_setting(conn, repo.TRIAL_SEATS_USED, 0)
        return {"total": total, "used": used, "left": max(0, total - used)}

    def trial_taken(self, account_id: str) -> bool:
        """Whether this account has already had its one free trial."""
        with self._engine.connect() as conn:
            return repo.has_trial(conn, account_id)

    # --- reads ---
    def balance(self, account_id: str) -> int:
        with self._engine.connect() as conn:
            return repo.balance(conn, account_id, self.currency)

    def ledger(self, account_id: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            entries = repo.ledger_entries(conn, account_id)
            total = repo.balance(conn, account_id, self.currency)
        return {
            "balance": total,
            "balance_text": format_amount(total, self.currency, self.exponent),
            "currency": self.currency,
            "entries": entries,
        }

    def orders(self, account_id: str | None) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return repo.list_orders(conn, account_id)

    def order(self, account: Account, order_id: str) -> dict[str, Any]:
        """One order with its account's and instance's names (for a receipt); another tenant's order
        answers like an unknown one, the operator sees every order."""
        with self._engine.connect() as conn:
            found = repo.get_order(conn, order_id)
        if found is None or (found["account_id"] != account.id and not account.is_admin):
            raise LookalikeError("OrderNotFound", f"No order {order_id!r}.", status=404)
        owner = self._accounts.get_account(found["account_id"])
        instance = self._instances.get(found["instance_id"]) if found["instance_id"] else None
        return {
            **found,
            "account_name": owner.name if owner else found["account_id"],
            "instance_name": instance.name if instance else None,
        }

    def events(self, account_id: str | None, after_id: int = 0) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return repo.list_events(conn, account_id, after_id)

    def recent_events(self, account_id: str | None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest events first (the console's feed); `events` pages forward for API clients."""
        with self._engine.connect() as conn:
            return repo.recent_events(conn, account_id, limit)

    def instance_status(self, instance: Instance) -> dict[str, Any]:
        """Package, period, state and usage of an instance, as tenants and the console see them."""
        with self._engine.connect() as conn:
            found = self.availability(instance, conn)
            now = self._clock.now()
            sub = repo.subscription_at(conn, instance.id, now) or repo.last_subscription(conn, instance.id)
            upcoming = [s for s in repo.subscriptions_of(conn, instance.id) if s.effective_from > now]
            row = repo.lock_instance(conn, instance.id)
        return {
            "state": found.state.value,
            "package_id": found.package_id,
            "capacity": found.capacity,
            "qps": found.qps,
            "cycle_start": sub.cycle_start.isoformat() if sub else None,
            "cycle_end": sub.cycle_end.isoformat() if sub else None,
            "paid_until": instance.expires_at.isoformat() if instance.expires_at else None,
            "release_at": release_at(instance.expires_at).isoformat() if instance.expires_at else None,
            "auto_renew": bool(row.auto_renew) if row is not None else False,
            "upcoming": [
                {
                    "package_id": s.package_id,
                    "from": s.effective_from.isoformat(),
                    "to": s.effective_to.isoformat(),
                }
                for s in upcoming
            ],
            "usage": self._instances.count_images(instance.id),
        }


def _required(value: str | None, name: str) -> str:
    if not value:
        raise LookalikeError(e.INVALID_PARAMETER, f"{name} is required.")
    return value
