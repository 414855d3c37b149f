"""Random sequences of billing operations on the whole service graph, checked after every step.

Operations: top-ups, buys, trials, package changes, renewals (with replays of their idempotency keys),
auto-renew switches, picture adds and clock jumps followed by a lifecycle sweep. A small model keeps the
package each instance should hold over time and its paid-until moment; the invariants compare it, the
ledger and the data plane's limits against the database after every step.
"""

from __future__ import annotations

import calendar
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from conftest import fresh_database_url, make_settings
from lookalike.clock import ManualClock
from lookalike.domain.catalogue import default_catalogue
from lookalike.domain.errors import LookalikeError
from lookalike.domain.lifecycle import InstanceState, state_at
from lookalike.domain.models import Account
from lookalike.service.container import build_services
from lookalike.storage import billing_repo as repo
from lookalike.storage.tables import images, instances, ledger, orders
from photos import encode, load_photo

SHARED_MODEL_CACHE = Path(tempfile.mkdtemp(prefix="lookalike-stateful-models-"))
PICTURES: tuple[bytes, ...] = tuple(
    encode(load_photo(name).resize((160, 160))) for name in ("coffee", "rocket", "chelsea")
)
START = datetime(2027, 1, 1, tzinfo=UTC)

# Expected limits come from the catalogue file, not from what billing copied into its rows.
TINY = "tiny-a"  # account a's private quotation: capacity 2, so capacity refusals happen
LIMITS: dict[str, tuple[int, int]] = {p.id: (p.capacity, p.qps) for p in default_catalogue().packages}
LIMITS[TINY] = (2, 1)
PUBLIC = sorted(p.id for p in default_catalogue().packages)
PACKAGES = [*PUBLIC, TINY]
CHEAP = ["100k-1qps", "2.5m-5qps", "2.5m-10qps", TINY]
packages = st.one_of(st.sampled_from(CHEAP), st.sampled_from(PACKAGES))
units = st.sampled_from(["month", "month", "month", "year"])
amounts = st.one_of(
    st.sampled_from([30_000, 80_000, 150_000, 1_000_000, 10_000_000, 100_000_000]), st.integers(1, 1_000_000)
)
NAMES = {"a": ("a0", "a1"), "b": ("b0", "b1")}
ALL_NAMES = [n for names in NAMES.values() for n in names]
RELEASE_AFTER = timedelta(days=7)


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, clamped to the month's last day (written here, independent of the code)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def period_end(start: datetime, unit: str, count: int) -> datetime:
    return add_months(start, count * 12 if unit == "year" else count)


@dataclass
class Segment:
    start: datetime
    end: datetime
    package_id: str


@dataclass
class Modeled:
    """What the test expects of one live instance."""

    instance_id: str
    account: str
    paid_until: datetime
    segments: list[Segment] = field(default_factory=list)
    auto_renew: bool = False
    # Packages bought by a renewal while active (adds must also fit them until their cycle starts).
    deferred: set[str] = field(default_factory=set)

    def package_at(self, now: datetime) -> str | None:
        found = [s.package_id for s in self.segments if s.start <= now < s.end]
        assert len(found) <= 1, self.segments
        return found[0] if found else None

    def last_package(self) -> str:
        return max(self.segments, key=lambda s: s.start).package_id


BILLING_REFUSALS = {"InsufficientBalance", "CapacityBelowUsage", "InvalidPackage", "InvalidInstance"}


class BillingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory(prefix="lookalike-stateful-")
        self.database = ExitStack()  # the PostgreSQL pass's database of this run (dropped in teardown)
        database_url = self.database.enter_context(fresh_database_url())
        self.clock = ManualClock(START)
        self.services = build_services(
            make_settings(Path(self.tmp.name), database_url, model_cache_dir=SHARED_MODEL_CACHE),
            clock=self.clock,
            background=False,
        )
        self.accounts: dict[str, Account] = {}
        for label in NAMES:
            self.accounts[label], _ = self.services.accounts.create_account(f"acct-{label}")
        self.services.billing.catalogues.create_private_package(
            self.accounts["a"].id, capacity=2, qps=1, monthly=100, yearly=1000, package_id=TINY
        )
        self.services.billing.trials.set_seats(1)
        self.live: dict[str, Modeled] = {}
        self.released: set[str] = set()
        self.keys = 0
        self.last_call: tuple[Callable[[], dict[str, Any]], dict[str, Any]] | None = None

    def teardown(self) -> None:
        self.services.close()
        self.database.close()
        self.tmp.cleanup()

    # --- helpers ---
    @property
    def now(self) -> datetime:
        return self.clock.now()

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def money_call(self, call: Callable[[str], dict[str, Any]], allowed: set[str]) -> dict[str, Any] | None:
        """Run a money-changing call under a fresh key; remember it for a replay."""
        key = self.key()
        try:
            body = call(key)
        except LookalikeError as err:
            assert err.code in allowed, err
            return None
        assert "replayed" not in body
        self.last_call = (lambda: call(key), body)
        return body

    def state_of(self, name: str) -> InstanceState | None:
        model = self.live.get(name)
        return None if model is None else state_at(self.now, model.paid_until)

    # --- rules ---
    @initialize(a=st.sampled_from([0, 80_000, 10_000_000]), b=st.sampled_from([0, 30_000, 100_000_000]))
    def opening_balances(self, a: int, b: int) -> None:
        for label, amount in (("a", a), ("b", b)):
            if amount:
                self.services.billing.payments.top_up(
                    self.accounts[label].id, amount, idempotency_key=self.key()
                )

    def pick(self, index: int) -> str:
        live = sorted(self.live)
        return live[index % len(live)]

    @rule(account=st.sampled_from(sorted(NAMES)), amount=amounts)
    def top_up(self, account: str, amount: int) -> None:
        account_id = self.accounts[account].id
        self.money_call(
            lambda key: self.services.billing.payments.top_up(account_id, amount, idempotency_key=key), set()
        )

    @rule(
        account=st.sampled_from(sorted(NAMES)),
        slot=st.integers(0, 1),
        package_id=packages,
        unit=units,
        count=st.integers(1, 3),
    )
    def buy(self, account: str, slot: int, package_id: str, unit: str, count: int) -> None:
        name = NAMES[account][slot]
        body = self.money_call(
            lambda key: self.services.billing.orders.buy(
                self.accounts[account], name, package_id, unit=unit, count=count, idempotency_key=key
            ),
            {"InsufficientBalance", "InvalidPackage", "InstanceAlreadyExists"},
        )
        if body is None:
            return
        assert name not in self.live, "bought a name that is still taken"
        assert not (package_id == TINY and account != "a"), "bought another account's private package"
        end = period_end(self.now, unit, count)
        assert body["cycle"]["end"] == end.isoformat()
        self.live[name] = Modeled(body["instance_id"], account, end, [Segment(self.now, end, package_id)])

    @rule(account=st.sampled_from(sorted(NAMES)), slot=st.integers(0, 1))
    def trial(self, account: str, slot: int) -> None:
        name = NAMES[account][slot]
        body = self.money_call(
            lambda key: self.services.billing.trials.trial(self.accounts[account], name, idempotency_key=key),
            {"TrialUnavailable", "InstanceAlreadyExists"},
        )
        if body is None:
            return
        assert body["total"] == 0
        end = period_end(self.now, "month", 1)
        self.live[name] = Modeled(body["instance_id"], account, end, [Segment(self.now, end, "100k-1qps")])

    @precondition(lambda self: bool(self.live))
    @rule(index=st.integers(0, 7), package_id=packages)
    def change(self, index: int, package_id: str) -> None:
        name = self.pick(index)
        account = name[0]
        model = self.live.get(name)
        body = self.money_call(
            lambda key: self.services.billing.subscriptions.change(
                self.accounts[account], name, package_id, idempotency_key=key
            ),
            BILLING_REFUSALS | {"InstanceStatusError"},
        )
        if body is None:
            return
        assert model is not None and self.state_of(name) is InstanceState.ACTIVE
        current = next(s for s in model.segments if s.start <= self.now < s.end)
        assert current.package_id != package_id
        new = Segment(self.now, current.end, package_id)
        current.end = self.now
        model.segments.append(new)
        if current.start == current.end:
            model.segments.remove(current)

    @precondition(lambda self: bool(self.live))
    @rule(index=st.integers(0, 7), package_id=packages, unit=units, count=st.integers(1, 3))
    def renew(self, index: int, package_id: str, unit: str, count: int) -> None:
        name = self.pick(index)
        account = name[0]
        model = self.live.get(name)
        state = self.state_of(name)
        quote: int | None = None
        if model is not None and state is not InstanceState.RELEASED:
            try:
                quote = self.services.billing.quotes.quote(
                    self.accounts[account],
                    "renew",
                    package_id=package_id,
                    unit=unit,
                    count=count,
                    instance_name=name,
                ).total.amount
            except LookalikeError as err:
                assert err.code in BILLING_REFUSALS, err
        body = self.money_call(
            lambda key: self.services.billing.subscriptions.renew(
                self.accounts[account], name, package_id, unit=unit, count=count, idempotency_key=key
            ),
            BILLING_REFUSALS | {"InstanceStatusError"},
        )
        if body is None:
            return
        assert model is not None and state is not InstanceState.RELEASED
        assert body["total"] == quote, "the renewal quote differs from the charge"
        start = model.paid_until if state is InstanceState.ACTIVE else self.now
        end = period_end(start, unit, count)
        assert (body["cycle"]["start"], body["cycle"]["end"]) == (start.isoformat(), end.isoformat())
        model.segments.append(Segment(start, end, package_id))
        model.paid_until = end
        if state is InstanceState.ACTIVE:
            model.deferred.add(package_id)

    @precondition(lambda self: bool(self.live))
    @rule(index=st.integers(0, 7), enabled=st.booleans())
    def auto_renew(self, index: int, enabled: bool) -> None:
        name = self.pick(index)
        try:
            self.services.billing.subscriptions.set_auto_renew(self.accounts[name[0]], name, enabled)
        except LookalikeError as err:
            assert err.code == "InvalidInstance" and name not in self.live
            return
        self.live[name].auto_renew = enabled

    @rule(
        slot=st.integers(0, 1),
        package_id=st.sampled_from(CHEAP),
        count=st.integers(1, 3),
        account=st.sampled_from(sorted(NAMES)),
    )
    def buy_monthly(self, account: str, slot: int, package_id: str, count: int) -> None:
        self.buy(account, slot, package_id, "month", count)

    @rule(name=st.sampled_from(ALL_NAMES), package_id=packages)
    def orders_on_an_unknown_name(self, name: str, package_id: str) -> None:
        if name in self.live:
            return
        owner = self.accounts[name[0]]
        for call in (
            lambda: self.services.billing.subscriptions.change(
                owner, name, package_id, idempotency_key=self.key()
            ),
            lambda: self.services.billing.subscriptions.renew(
                owner, name, package_id, idempotency_key=self.key()
            ),
            lambda: self.services.billing.subscriptions.set_auto_renew(owner, name, True),
            lambda: self.services.images.add_image(
                owner, name, product_id="p", pic_name="p", picture=PICTURES[0]
            ),
        ):
            try:
                call()
            except LookalikeError as err:
                assert err.code == "InvalidInstance", err
            else:
                raise AssertionError(f"{name} is not live but an order on it passed")

    @precondition(lambda self: self.last_call is not None)
    @rule()
    def replay(self) -> None:
        assert self.last_call is not None
        again, first = self.last_call
        entries = self.ledger_count()
        body = again()
        assert body["replayed"] is True
        assert body["order_id"] == first["order_id"]
        assert self.ledger_count() == entries

    @precondition(lambda self: bool(self.live))
    @rule(index=st.integers(0, 7), picture=st.integers(0, len(PICTURES) - 1))
    def add_picture(self, index: int, picture: int) -> None:
        name = self.pick(index)
        self.clock.advance(1)  # adds are rate-limited (1 or 5 per second) and the clock stands still
        try:
            self.services.images.add_image(
                self.accounts[name[0]],
                name,
                product_id=f"p{picture}",
                pic_name=f"pic{picture}",
                picture=PICTURES[picture],
            )
        except LookalikeError as err:
            assert err.code in {
                "InvalidInstance",
                "InstanceStatusError",
                "InstanceOverQuota",
                "DeniedRequest",
            }
            if err.code == "InstanceStatusError":
                assert self.state_of(name) is not InstanceState.ACTIVE
            return
        assert self.state_of(name) is InstanceState.ACTIVE

    @rule(seconds=st.one_of(st.integers(3600, 3 * 86400), st.integers(3600, 40 * 86400)))
    def time_passes(self, seconds: int) -> None:
        before = {name: self.db_status(m.instance_id) for name, m in self.live.items()}
        self.clock.advance(seconds)
        report = self.services.lifecycle.sweep()
        assert report.ran
        for name in report.renewed:
            model = self.live[name]
            assert model.auto_renew
            # Seamless while the instance was still marked active; from now once it had expired.
            start = model.paid_until if before[name] == "active" else self.now
            end = period_end(start, "month", 1)
            model.segments.append(Segment(start, end, model.last_package()))
            model.paid_until = end
        for name in list(self.live):
            model = self.live[name]
            expected = state_at(self.now, model.paid_until)
            assert self.db_status(model.instance_id) == expected.value, (name, expected)
            if expected is InstanceState.RELEASED:
                assert name in report.released
                self.released.add(model.instance_id)
                del self.live[name]

    # --- invariants ---
    def db_status(self, instance_id: str) -> str:
        with self.services.engine.connect() as conn:
            return str(
                conn.execute(select(instances.c.status).where(instances.c.id == instance_id)).scalar_one()
            )

    def ledger_count(self) -> int:
        with self.services.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ledger)).scalar_one())

    @invariant()
    def balance_is_the_ledger_sum_and_never_negative(self) -> None:
        with self.services.engine.connect() as conn:
            for account in self.accounts.values():
                total = conn.execute(
                    select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
                        ledger.c.account_id == account.id
                    )
                ).scalar_one()
                balance = self.services.billing.payments.balance(account.id)
                assert balance == int(total) >= 0

    @invariant()
    def each_order_has_one_ledger_effect(self) -> None:
        with self.services.engine.connect() as conn:
            per_order: dict[str | None, int] = {
                order_id: int(n)
                for order_id, n in conn.execute(
                    select(ledger.c.order_id, func.count()).group_by(ledger.c.order_id)
                ).all()
            }
            for order_id, amount, kind in conn.execute(select(orders.c.id, orders.c.amount, orders.c.kind)):
                effects = per_order.get(order_id, 0)
                if amount != 0:
                    assert effects == 1, (order_id, kind, amount, effects)
                else:
                    assert effects <= 1, (order_id, kind, effects)
            assert None not in per_order

    @invariant()
    def instances_agree_with_the_model_and_the_clock(self) -> None:
        now = self.now
        for name, model in self.live.items():
            instance = self.services.instances_repo.get(model.instance_id)
            assert instance is not None and instance.expires_at == model.paid_until, name
            state = state_at(now, model.paid_until)
            status = self.services.billing.subscriptions.instance_status(instance)
            assert status["state"] == state.value, (name, status)
            with self.services.engine.connect() as conn:
                records = repo.BillingRecords(conn).subscriptions_of(model.instance_id)
            held = [s for s in records if s.effective_from <= now < s.effective_to]
            expected = model.package_at(now)
            if state is InstanceState.ACTIVE:
                assert expected is not None
                assert [s.package_id for s in held] == [expected], (name, held, model.segments)
                effective = self.services.billing.entitlements.effective(instance)
                assert (effective.capacity, effective.search_qps) == LIMITS[expected]
                assert effective.status == "active"
                assert status["usage"] <= LIMITS[expected][0], (name, status)
            else:
                assert held == [] and expected is None, (name, held)

    @invariant()
    def released_instances_hold_no_data(self) -> None:
        with self.services.engine.connect() as conn:
            for instance_id in self.released:
                assert self.db_status(instance_id) == "released"
                rows = conn.execute(
                    select(func.count()).select_from(images).where(images.c.instance_id == instance_id)
                ).scalar_one()
                assert rows == 0


BillingMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestBilling = BillingMachine.TestCase
