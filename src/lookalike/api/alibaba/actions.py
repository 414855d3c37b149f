"""The Alibaba Image Search data-plane actions: parse parameters -> call the service -> shape the body.

A thin adapter. Every rule (paging limits, filter syntax, regions, categories, key and attribute
validation, instance ownership and state, rate limits, capacity) lives in the service and domain
layers and raises the Alibaba error code itself; this module passes the raw values through so the
same errors come out. The only checks here are about the request's shape (a missing InstanceName,
an unknown 2019 `Type`).

Response keys follow reference §4/§5 exactly, quirks included:

* `Head.DocsFound` is the number of auctions RETURNED, `Head.DocsReturn` the number MATCHED in the
  instance (the docstrings' counter-intuitive way round).
* Searches and CheckImageExists / CompareSimilarByImage say `Msg`; AddImage, UpdateImage and
  DeleteImage say `Message`. Detail carries only `Instance` and `Success`.
* `SortExprValues` is `"<relevance>;0"`, relevance = Score x the documented maximum of the hit's
  category (an identical picture scores the maximum).
* `CheckImageExists.Auctions` is an object. When the picture does not exist it is an EMPTY object
  (`Exists` false), never omitted or null: the SDK then still builds an `Auctions` model (all fields
  None), so client code reading `resp.body.auctions.product_id` without checking `Exists` first
  behaves as it does against the object-typed field, instead of failing on None.
* Detail's `Capacity` is in units of 10,000 pictures, rounded DOWN (capacity // 10,000): every
  catalogue package is a multiple of 10,000, and for an operator-granted odd size the figure never
  promises room the instance does not have. `UtcCreate` / `UtcExpireTime` are epoch milliseconds as
  strings; `UtcExpireTime` (the paid-until instant) is omitted for an instance that never expires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from lookalike.api.alibaba.dispatch import Context, action
from lookalike.api.alibaba.pic_content import decode_pic_content
from lookalike.api.alibaba.request import AcsRequest
from lookalike.domain import errors as e
from lookalike.domain.attributes import INT_SLOTS, STR_SLOTS
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Attributes, AttributeUpdate, ImageRecord, PicInfo, SearchHit, SearchResult
from lookalike.domain.region import Box
from lookalike.service.images import SearchOptions

V2020: Final = "2020-12-14"
V2019: Final = "2019-03-25"

DEFAULT_REGION: Final = "cn-shanghai"
CAPACITY_UNIT: Final = 10_000
INVALID_TYPE: Final = "InvalidType"

# SortExprValues relevance of an identical picture (reference §4.0): categories 0-2, and the rest.
RELEVANCE_MAX_APPAREL: Final = 7.33136443711219e24
RELEVANCE_MAX_OTHER: Final = 5.37633353624177e24
_APPAREL: Final = frozenset({0, 1, 2})

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _ok(message_key: str) -> dict[str, Any]:
    return {"Success": True, "Code": 0, message_key: "success"}


# --- parameters ---


def instance_name(req: AcsRequest) -> str:
    name = req.text("InstanceName")
    if name is None:
        raise LookalikeError(e.INVALID_INSTANCE_NAME, "The parameter instanceName is not specified.")
    return name


def _key(req: AcsRequest) -> tuple[str, str]:
    # Missing values go through as "" so the service's key validation names the missing one.
    return req.text("ProductId") or "", req.text("PicName") or ""


def _slot_values(req: AcsRequest) -> dict[str, int | str | None]:
    """Each attribute slot as sent under its Alibaba name (None: absent); an int slot that does not parse is
    refused with the slot's own code (InvalidIntAttr2, ...)."""
    values: dict[str, int | str | None] = {}
    for slot in INT_SLOTS:
        values[slot.name] = req.integer(slot.alibaba, slot.error_code)
    for slot in STR_SLOTS:
        values[slot.name] = req.params.get(slot.alibaba)
    return values


def _attributes(req: AcsRequest) -> Attributes:
    return AttributeUpdate.of_slots(_slot_values(req)).filled()


def _attribute_update(req: AcsRequest) -> AttributeUpdate:
    """Absent = unchanged; a string sent empty clears it (the SDK sends `StrAttr=` for "")."""
    return AttributeUpdate.of_slots(_slot_values(req), req.params.get("CustomContent"))


def _search_options(req: AcsRequest, *, extended: bool = True) -> SearchOptions:
    """Num/Start/CategoryId/Filter; the 2020 API adds DistinctProductId and ScoreThreshold."""
    num = req.integer("Num", e.INVALID_NUM)
    start = req.integer("Start", e.INVALID_START)
    return SearchOptions(
        num=10 if num is None else num,
        start=0 if start is None else start,
        category_id=req.integer("CategoryId", e.INVALID_CATEGORY),
        filter=req.text("Filter"),
        distinct_product_id=req.boolean("DistinctProductId", False) if extended else False,
        score_threshold=req.text("ScoreThreshold") if extended else None,
    )


# --- response pieces ---


def _region_json(box: Box) -> str:
    return box.to_str()


def pic_info_json(info: PicInfo) -> dict[str, Any]:
    return {
        "CategoryId": info.category_id,
        "Region": _region_json(info.region),
        "AllCategories": [{"Id": cid, "Name": name} for cid, name in info.all_categories],
        "MultiRegion": [{"Region": _region_json(box)} for box in info.multi_region],
    }


def sort_expr_values(score: float, category_id: int) -> str:
    maximum = RELEVANCE_MAX_APPAREL if category_id in _APPAREL else RELEVANCE_MAX_OTHER
    return f"{score * maximum:.15g};0"


def record_json(record: ImageRecord) -> dict[str, Any]:
    return {
        "ProductId": record.product_id,
        "PicName": record.pic_name,
        "CategoryId": record.category_id,
        "CustomContent": record.custom_content,
        **record.attributes.by_alibaba_name(),
    }


def hit_json(hit: SearchHit) -> dict[str, Any]:
    return {
        **record_json(hit.record),
        "Score": hit.score,
        "SortExprValues": sort_expr_values(hit.score, hit.record.category_id),
    }


def search_json(result: SearchResult) -> dict[str, Any]:
    body = _ok("Msg")
    body["Head"] = {
        "DocsFound": len(result.hits),  # returned (sic)
        "DocsReturn": result.matched,  # matched in the instance (sic)
        "SearchTime": result.search_time_ms,
    }
    if result.pic_info is not None:
        body["PicInfo"] = pic_info_json(result.pic_info)
    body["Auctions"] = [hit_json(hit) for hit in result.hits]
    return body


def epoch_ms(moment: datetime) -> str:
    return str((moment - _EPOCH) // timedelta(milliseconds=1))


def service_region(ctx: Context) -> str:
    region = getattr(ctx.services.settings, "alibaba_region", None)
    return region if isinstance(region, str) and region else DEFAULT_REGION


# --- 2020-12-14 ---


@action(V2020, "AddImage")
def add_image(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    product_id, pic_name = _key(req)
    picture = decode_pic_content(ctx, req.text("PicContent"))
    result = ctx.services.images.add_image(
        ctx.account,
        name,
        product_id=product_id,
        pic_name=pic_name,
        picture=picture,
        category_id=req.integer("CategoryId", e.INVALID_CATEGORY),
        crop=req.boolean("Crop", True),
        region=req.text("Region"),
        attributes=_attributes(req),
        custom_content=req.params.get("CustomContent") or "",
    )
    return {**_ok("Message"), "PicInfo": pic_info_json(result.pic_info)}


@action(V2020, "SearchImageByPic")
def search_image_by_pic(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    picture = decode_pic_content(ctx, req.text("PicContent"))
    result = ctx.services.images.search_by_pic(
        ctx.account,
        name,
        picture,
        _search_options(req),
        crop=req.boolean("Crop", True),
        region=req.text("Region"),
    )
    return search_json(result)


@action(V2020, "SearchImageByName")
def search_image_by_name(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    product_id, pic_name = _key(req)
    result = ctx.services.images.search_by_name(ctx.account, name, product_id, pic_name, _search_options(req))
    return search_json(result)


@action(V2020, "SearchImageByFilter")
def search_image_by_filter(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    options = _search_options(req, extended=False)
    result = ctx.services.images.search_by_filter(
        ctx.account, name, options.filter, num=options.num, start=options.start
    )
    # The 4.4.0 model has no Head, Score or SortExprValues for this action.
    return {**_ok("Msg"), "Auctions": [record_json(hit.record) for hit in result.hits]}


@action(V2020, "CheckImageExists")
def check_image_exists(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    product_id, pic_name = _key(req)
    record = ctx.services.images.check_exists(ctx.account, name, product_id, pic_name)
    return {
        **_ok("Msg"),
        "Exists": record is not None,
        "Auctions": record_json(record) if record is not None else {},
    }


@action(V2020, "CompareSimilarByImage")
def compare_similar_by_image(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    primary = decode_pic_content(ctx, req.text("PrimaryPicContent"), "PrimaryPicContent")
    secondary = decode_pic_content(ctx, req.text("SecondaryPicContent"), "SecondaryPicContent")
    score = ctx.services.images.compare(ctx.account, name, primary, secondary)
    return {**_ok("Msg"), "Score": score}


@action(V2020, "UpdateImage")
def update_image(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    product_id, pic_name = _key(req)
    ctx.services.images.update_image(
        ctx.account, name, product_id=product_id, pic_name=pic_name, change=_attribute_update(req)
    )
    return _ok("Message")


@action(V2020, "DeleteImage")
def delete_image(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    pic_names = ctx.services.images.delete_images(
        ctx.account,
        name,
        product_id=req.text("ProductId"),
        pic_name=req.text("PicName"),
        filter=req.text("Filter"),
        by_filter=req.boolean("IsDeleteByFilter", False),
    )
    return {**_ok("Message"), "Data": {"PicNames": pic_names}}


@action(V2020, "Detail")
def detail(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    found = ctx.services.images.detail(ctx.account, name)
    instance = found.instance
    body: dict[str, Any] = {
        "Name": instance.name,
        "Region": service_region(ctx),
        "ServiceType": int(instance.service_type),
        "Capacity": instance.capacity // CAPACITY_UNIT,
        "Qps": instance.search_qps,
        "TotalCount": found.total_count,
        "UtcCreate": epoch_ms(instance.created_at),
    }
    if instance.expires_at is not None:
        body["UtcExpireTime"] = epoch_ms(instance.expires_at)
    return {"Success": True, "Instance": body}


# --- 2019-03-25 (ROA): one IntAttr/StrAttr, no DistinctProductId/ScoreThreshold, slimmer PicInfo ---

_AUCTION_2019: Final = (
    "CategoryId",
    "ProductId",
    "PicName",
    "CustomContent",
    "SortExprValues",
    "Score",
    INT_SLOTS[0].alibaba,  # IntAttr: 2019 has only the first slot of each kind
    STR_SLOTS[0].alibaba,  # StrAttr
)


@action(V2019, "AddImage")
def add_image_2019(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    body = add_image(ctx, req)
    info = body["PicInfo"]
    return {**body, "PicInfo": {"CategoryId": info["CategoryId"], "Region": info["Region"]}}


@action(V2019, "SearchImage")
def search_image_2019(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    kind = req.text("Type") or "SearchByPic"
    options = _search_options(req, extended=False)
    images = ctx.services.images
    if kind == "SearchByPic":
        picture = decode_pic_content(ctx, req.text("PicContent"))
        result = images.search_by_pic(
            ctx.account, name, picture, options, crop=req.boolean("Crop", True), region=req.text("Region")
        )
    elif kind == "SearchByName":
        product_id, pic_name = _key(req)
        result = images.search_by_name(ctx.account, name, product_id, pic_name, options)
    else:
        raise LookalikeError(
            INVALID_TYPE, "The specified parameter Type is not valid: use SearchByPic or SearchByName."
        )
    body = search_json(result)
    body["Auctions"] = [{key: auction[key] for key in _AUCTION_2019} for auction in body["Auctions"]]
    return body


@action(V2019, "DeleteImage")
def delete_image_2019(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    ctx.services.images.delete_images(
        ctx.account, name, product_id=req.text("ProductId"), pic_name=req.text("PicName")
    )
    return _ok("Message")
