"""The catalogue: the operator's public packages (a file, re-read on demand) plus private quotations."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.billing_records import DuplicateRecord
from lookalike.domain.catalogue import Catalogue, Package, default_catalogue_text, load_catalogue_json
from lookalike.domain.errors import LookalikeError
from lookalike.service.billing.ports import BillingStore, BillingTransaction
from lookalike.storage.accounts_repo import AccountRepository


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


class Catalogues:
    """Which packages an account may order, and the operator's private quotations."""

    def __init__(
        self, store: BillingStore, clock: Clock, source: CatalogueSource, accounts: AccountRepository
    ) -> None:
        self._store = store
        self._clock = clock
        self._source = source
        self._accounts = accounts

    @property
    def public(self) -> Catalogue:
        return self._source.catalogue

    @property
    def exponent(self) -> int:
        return self._source.catalogue.exponent

    @property
    def currency(self) -> str:
        return self._source.catalogue.currency

    def reload(self) -> Catalogue:
        return self._source.reload()

    def catalogue_for(self, account_id: str | None, tx: BillingTransaction | None = None) -> Catalogue:
        """Public packages plus the private quotations made for this account (every account's, for None)."""
        if tx is None:
            with self._store.reading() as own:
                return self.catalogue_for(account_id, own)
        result = self._source.catalogue
        for package in tx.private_packages_for(account_id):
            result = result.with_private(package)
        return result

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
        taken = LookalikeError(e.INVALID_PACKAGE, f"Package id {package.id!r} is already taken.")
        try:
            with self._store.writing() as tx:
                if package.id in {p.id for p in self._source.catalogue.packages}:
                    raise taken
                tx.insert_private_package(package, self._clock.now())
        except DuplicateRecord:
            raise taken from None
        return package
