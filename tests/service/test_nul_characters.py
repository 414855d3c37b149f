"""NUL characters: PostgreSQL text cannot hold (or even compare with) them, so every store refuses them the
same way at validation, with the caller's error code, never a database error (a 500)."""

from __future__ import annotations

import pytest

from conftest import Tenant
from lookalike.domain.errors import LookalikeError
from lookalike.service.container import Services
from photos import encode, load_photo


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(LookalikeError) as caught:
        call()
    return caught.value.code


def test_nul_in_custom_content_is_refused(services: Services, tenant: Tenant) -> None:
    picture = encode(load_photo("coffee"))
    assert (
        code_of(
            lambda: services.images.add_image(
                tenant.account, "shop", product_id="p", pic_name="n", picture=picture, custom_content="a\x00b"
            )
        )
        == "InvalidCustomContent"
    )


def test_nul_in_a_filter_string_matches_nothing(services: Services, tenant: Tenant) -> None:
    """A NUL literal can equal no stored value, so `=` matches nothing and `!=` everything."""
    picture = encode(load_photo("coffee"))
    services.images.add_image(tenant.account, "shop", product_id="p", pic_name="n", picture=picture)

    def hits(expression: str) -> int:
        return len(services.images.search_by_filter(tenant.account, "shop", expression).hits)

    assert hits('str_attr = "a\x00"') == 0 and hits('str_attr in ("a\x00")') == 0
    assert hits('str_attr != "a\x00"') == 1 and hits('str_attr not in ("a\x00", "b")') == 1
    assert hits('str_attr in ("a\x00", "")') == 1


def test_nul_in_an_idempotency_key_is_refused(services: Services, tenant: Tenant) -> None:
    code = code_of(lambda: services.billing.payments.top_up(tenant.account.id, 5, idempotency_key="k\x00"))
    assert code == "IdempotencyKeyRequired"
    assert services.billing.payments.balance(tenant.account.id) == 0
