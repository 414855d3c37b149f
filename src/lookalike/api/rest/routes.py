"""Native REST endpoints: instances, images and searches (tenant), accounts and instances (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from lookalike.api.rest.auth import admin_account, current_account, services
from lookalike.api.rest.payload import Payload, read_payload
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, ImageRecord, Instance, PicInfo, SearchResult, ServiceType
from lookalike.service.images import SearchOptions

router = APIRouter(prefix="/v1")
AccountDep = Annotated[Account, Depends(current_account)]
AdminDep = Annotated[Account, Depends(admin_account)]


# --- serializers (plain dicts: the wire shape is documented in README/OpenAPI) ---
def instance_json(instance: Instance, total_count: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": instance.id,
        "name": instance.name,
        "account_id": instance.account_id,
        "service_type": instance.service_type.name.lower(),
        "capacity": instance.capacity,
        "search_qps": instance.search_qps,
        "status": instance.status,
        "created_at": instance.created_at.isoformat(),
        "expires_at": instance.expires_at.isoformat() if instance.expires_at else None,
    }
    if total_count is not None:
        body["total_count"] = total_count
    return body


def record_json(record: ImageRecord) -> dict[str, Any]:
    return {
        "product_id": record.product_id,
        "pic_name": record.pic_name,
        "category_id": record.category_id,
        **record.attributes.as_filter_fields(),
        "custom_content": record.custom_content,
        "region": record.region,
    }


def pic_info_json(info: PicInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "category_id": info.category_id,
        "region": info.region.to_str(),
        "multi_region": [b.to_str() for b in info.multi_region],
        "all_categories": [{"id": i, "name": n} for i, n in info.all_categories],
    }


def search_json(result: SearchResult, *, with_scores: bool = True) -> dict[str, Any]:
    return {
        "results": [
            {**record_json(h.record), **({"score": round(h.score, 6)} if with_scores else {})}
            for h in result.hits
        ],
        "returned": len(result.hits),
        "matched": result.matched,
        "search_time_ms": result.search_time_ms,
        "pic_info": pic_info_json(result.pic_info),
    }


def search_options(payload: Payload) -> SearchOptions:
    num = payload.integer("num", code=e.INVALID_NUM)
    start = payload.integer("start", code=e.INVALID_START)
    return SearchOptions(
        num=10 if num is None else num,
        start=0 if start is None else start,
        category_id=payload.integer("category_id", code=e.INVALID_CATEGORY),
        filter=payload.text("filter"),
        distinct_product_id=payload.boolean("distinct_product_id", False),
        score_threshold=payload.text("score_threshold"),
    )


# --- health ---
@router.get("/health", tags=["meta"])
def health() -> dict[str, str]:
    return {"status": "ok"}


# --- tenant: instances ---
@router.get("/instances", tags=["instances"])
def list_instances(request: Request, account: AccountDep) -> dict[str, Any]:
    found = services(request).accounts.list_instances(account)
    return {"instances": [instance_json(i) for i in found]}


@router.get("/instances/{name}", tags=["instances"])
def instance_detail(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    detail = services(request).images.detail(account, name)
    return instance_json(detail.instance, detail.total_count)


# --- tenant: images ---
@router.post("/instances/{name}/images", tags=["images"], status_code=200)
async def add_image(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    """Add or overwrite a picture: multipart (`picture` file) or JSON/form (`pic_content` base64)."""
    payload = await read_payload(request)
    svc = services(request).images
    result = await run_in_threadpool(
        lambda: svc.add_image(
            account,
            name,
            product_id=payload.text("product_id") or "",
            pic_name=payload.text("pic_name") or "",
            picture=payload.picture(),
            category_id=payload.integer("category_id", code=e.INVALID_CATEGORY),
            crop=payload.boolean("crop", True),
            region=payload.text("region") or None,
            attributes=payload.attributes(),
            custom_content=payload.text("custom_content") or "",
        )
    )
    return {"created": result.created, "pic_info": pic_info_json(result.pic_info)}


@router.post("/instances/{name}/images/update", tags=["images"])
async def update_image(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    payload = await read_payload(request)
    svc = services(request).images
    await run_in_threadpool(
        lambda: svc.update_image(
            account,
            name,
            product_id=payload.text("product_id") or "",
            pic_name=payload.text("pic_name") or "",
            change=payload.attribute_update(),
        )
    )
    return {"updated": True}


@router.post("/instances/{name}/images/delete", tags=["images"])
async def delete_images(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    """Delete by `product_id` (all its pictures), by `product_id` + `pic_name`, or by `filter`."""
    payload = await read_payload(request)
    svc = services(request).images
    by_filter = payload.boolean("is_delete_by_filter", payload.text("filter") is not None)
    deleted = await run_in_threadpool(
        lambda: svc.delete_images(
            account,
            name,
            product_id=payload.text("product_id"),
            pic_name=payload.text("pic_name"),
            filter=payload.text("filter"),
            by_filter=by_filter,
        )
    )
    return {"deleted": len(deleted), "pic_names": deleted}


@router.post("/instances/{name}/images/exists", tags=["images"])
async def image_exists(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    payload = await read_payload(request)
    svc = services(request).images
    record = await run_in_threadpool(
        lambda: svc.check_exists(
            account, name, payload.text("product_id") or "", payload.text("pic_name") or ""
        )
    )
    return {"exists": record is not None, "image": record_json(record) if record else None}


# --- tenant: searches ---
@router.post("/instances/{name}/search/picture", tags=["search"])
async def search_by_picture(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    """Search by photo. A hit's `score` is the best cosine over (the query's views x the picture's stored
    views), raised for the first 10 hits by their matching local features, in [0, 1]: 1.0 for the
    identical picture, >= 0.87 for a copy (the calibrated copy threshold: precision 0.99 on the copy
    benchmark), below 0.5 for a picture that is no copy. See the README's Scores."""
    payload = await read_payload(request)
    svc = services(request).images
    result = await run_in_threadpool(
        lambda: svc.search_by_pic(
            account,
            name,
            payload.picture(),
            search_options(payload),
            crop=payload.boolean("crop", True),
            region=payload.text("region") or None,
        )
    )
    return search_json(result)


@router.post("/instances/{name}/search/name", tags=["search"])
async def search_by_name(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    payload = await read_payload(request)
    svc = services(request).images
    result = await run_in_threadpool(
        lambda: svc.search_by_name(
            account,
            name,
            payload.text("product_id") or "",
            payload.text("pic_name") or "",
            search_options(payload),
        )
    )
    return search_json(result)


@router.post("/instances/{name}/search/filter", tags=["search"])
async def search_by_filter(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    payload = await read_payload(request)
    options = search_options(payload)
    svc = services(request).images
    result = await run_in_threadpool(
        lambda: svc.search_by_filter(
            account, name, payload.text("filter"), num=options.num, start=options.start
        )
    )
    return search_json(result, with_scores=False)


@router.post("/instances/{name}/compare", tags=["search"])
async def compare(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    payload = await read_payload(request)
    svc = services(request).images
    first = payload.picture("primary", "primary_pic_content")
    second = payload.picture("secondary", "secondary_pic_content")
    score = await run_in_threadpool(lambda: svc.compare(account, name, first, second))
    return {"score": round(score, 6)}


# --- admin ---
@router.get("/admin/accounts", tags=["admin"])
def admin_list_accounts(request: Request, _admin: AdminDep) -> dict[str, Any]:
    found = services(request).accounts.list_accounts()
    return {"accounts": [{"id": a.id, "name": a.name, "is_admin": a.is_admin} for a in found]}


@router.post("/admin/accounts", tags=["admin"])
async def admin_create_account(request: Request, _admin: AdminDep) -> dict[str, Any]:
    payload = await read_payload(request)
    account, key = services(request).accounts.create_account(payload.text("name") or "")
    return {
        "account_id": account.id,
        "name": account.name,
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
    }


@router.post("/admin/accounts/{account_id}/keys", tags=["admin"])
def admin_create_key(request: Request, account_id: str, _admin: AdminDep) -> dict[str, Any]:
    key = services(request).accounts.create_access_key(account_id)
    return {
        "account_id": account_id,
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
    }


@router.post("/admin/keys/{key_id}/disable", tags=["admin"])
def admin_disable_key(request: Request, key_id: str, _admin: AdminDep) -> dict[str, Any]:
    services(request).accounts.set_access_key_disabled(key_id, True)
    return {"access_key_id": key_id, "disabled": True}


@router.post("/admin/instances", tags=["admin"])
async def admin_create_instance(request: Request, _admin: AdminDep) -> dict[str, Any]:
    """An operator grant: an instance of any size at no charge, held for `months` (default 12)."""
    payload = await read_payload(request)
    service_type = (payload.text("service_type") or "product").lower()
    if service_type not in ("product", "generic"):
        raise LookalikeError(e.INVALID_PARAMETER, "service_type is 'product' or 'generic'.")
    capacity = payload.integer("capacity")
    qps = payload.integer("qps")
    if capacity is None or qps is None:
        raise LookalikeError(e.INVALID_PARAMETER, "capacity and qps are required.")
    svc = services(request)
    instance = svc.billing.orders.grant(
        payload.text("account_id") or "",
        payload.text("name") or "",
        capacity=capacity,
        qps=qps,
        months=payload.integer("months") or 12,
        service_type=ServiceType.PRODUCT if service_type == "product" else ServiceType.GENERIC,
    )
    svc.instances_repo.set_operation_limits(
        instance.id,
        add_qps=payload.integer("add_qps"),
        delete_qps=payload.integer("delete_qps"),
        update_qps=payload.integer("update_qps"),
    )
    return instance_json(instance, 0)
