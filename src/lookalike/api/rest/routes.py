"""Native REST endpoints: instances, images and searches (tenant), accounts and instances (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from lookalike.api.rest import requests as r
from lookalike.api.rest.auth import AccountDep, AdminDep
from lookalike.api.shared.dependencies import Accounts, Billing, Images, InstanceLimits
from lookalike.domain.models import ImageRecord, Instance, PicInfo, SearchResult, ServiceType

router = APIRouter(prefix="/v1")


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


# --- health ---
@router.get("/health", tags=["meta"])
def health() -> dict[str, str]:
    return {"status": "ok"}


# --- tenant: instances ---
@router.get("/instances", tags=["instances"])
def list_instances(account: AccountDep, accounts: Accounts) -> dict[str, Any]:
    found = accounts.list_instances(account)
    return {"instances": [instance_json(i) for i in found]}


@router.get("/instances/{name}", tags=["instances"])
def instance_detail(name: str, account: AccountDep, images: Images) -> dict[str, Any]:
    detail = images.detail(account, name)
    return instance_json(detail.instance, detail.total_count)


# --- tenant: images ---
@router.post("/instances/{name}/images", tags=["images"], status_code=200, openapi_extra=r.AddImage.openapi())
async def add_image(
    name: str, account: AccountDep, svc: Images, body: Annotated[r.AddImage, Depends(r.AddImage.parsed)]
) -> dict[str, Any]:
    """Add or overwrite a picture: multipart (`picture` file) or JSON/form (`pic_content` base64)."""
    given = body.attribute_update()
    result = await run_in_threadpool(
        lambda: svc.add_image(
            account,
            name,
            product_id=body.product_id or "",
            pic_name=body.pic_name or "",
            picture=body.picture_bytes(),
            category_id=body.category_id,
            crop=body.crop,
            region=body.region or None,
            attributes=given.filled(),
            custom_content=given.custom_content or "",
        )
    )
    return {"created": result.created, "pic_info": pic_info_json(result.pic_info)}


@router.post("/instances/{name}/images/update", tags=["images"], openapi_extra=r.UpdateImage.openapi())
async def update_image(
    name: str, account: AccountDep, svc: Images, body: Annotated[r.UpdateImage, Depends(r.UpdateImage.parsed)]
) -> dict[str, Any]:
    await run_in_threadpool(
        lambda: svc.update_image(
            account,
            name,
            product_id=body.product_id or "",
            pic_name=body.pic_name or "",
            change=body.attribute_update(),
        )
    )
    return {"updated": True}


@router.post("/instances/{name}/images/delete", tags=["images"], openapi_extra=r.DeleteImages.openapi())
async def delete_images(
    name: str,
    account: AccountDep,
    svc: Images,
    body: Annotated[r.DeleteImages, Depends(r.DeleteImages.parsed)],
) -> dict[str, Any]:
    """Delete by `product_id` (all its pictures), by `product_id` + `pic_name`, or by `filter`."""
    by_filter = body.is_delete_by_filter if body.is_delete_by_filter is not None else body.filter is not None
    deleted = await run_in_threadpool(
        lambda: svc.delete_images(
            account,
            name,
            product_id=body.product_id,
            pic_name=body.pic_name,
            filter=body.filter,
            by_filter=by_filter,
        )
    )
    return {"deleted": len(deleted), "pic_names": deleted}


@router.post("/instances/{name}/images/exists", tags=["images"], openapi_extra=r.ImageExists.openapi())
async def image_exists(
    name: str, account: AccountDep, svc: Images, body: Annotated[r.ImageExists, Depends(r.ImageExists.parsed)]
) -> dict[str, Any]:
    record = await run_in_threadpool(
        lambda: svc.check_exists(account, name, body.product_id or "", body.pic_name or "")
    )
    return {"exists": record is not None, "image": record_json(record) if record else None}


# --- tenant: searches ---
@router.post("/instances/{name}/search/picture", tags=["search"], openapi_extra=r.SearchByPicture.openapi())
async def search_by_picture(
    name: str,
    account: AccountDep,
    svc: Images,
    body: Annotated[r.SearchByPicture, Depends(r.SearchByPicture.parsed)],
) -> dict[str, Any]:
    """Search by photo. A hit's `score` is the best cosine over (the query's views x the picture's stored
    views), raised for the first 10 hits by their matching local features, in [0, 1]: 1.0 for the
    identical picture, >= 0.87 for a copy (the calibrated copy threshold: precision 0.99 on the copy
    benchmark), below 0.5 for a picture that is no copy. See the README's Scores."""
    result = await run_in_threadpool(
        lambda: svc.search_by_pic(
            account,
            name,
            body.picture_bytes(),
            body.search_options(),
            crop=body.crop,
            region=body.region or None,
        )
    )
    return search_json(result)


@router.post("/instances/{name}/search/name", tags=["search"], openapi_extra=r.SearchByName.openapi())
async def search_by_name(
    name: str,
    account: AccountDep,
    svc: Images,
    body: Annotated[r.SearchByName, Depends(r.SearchByName.parsed)],
) -> dict[str, Any]:
    result = await run_in_threadpool(
        lambda: svc.search_by_name(
            account, name, body.product_id or "", body.pic_name or "", body.search_options()
        )
    )
    return search_json(result)


@router.post("/instances/{name}/search/filter", tags=["search"], openapi_extra=r.SearchByFilter.openapi())
async def search_by_filter(
    name: str,
    account: AccountDep,
    svc: Images,
    body: Annotated[r.SearchByFilter, Depends(r.SearchByFilter.parsed)],
) -> dict[str, Any]:
    result = await run_in_threadpool(
        lambda: svc.search_by_filter(account, name, body.filter, num=body.num, start=body.start)
    )
    return search_json(result, with_scores=False)


@router.post("/instances/{name}/compare", tags=["search"], openapi_extra=r.Compare.openapi())
async def compare(
    name: str, account: AccountDep, svc: Images, body: Annotated[r.Compare, Depends(r.Compare.parsed)]
) -> dict[str, Any]:
    first, second = body.pictures()
    score = await run_in_threadpool(lambda: svc.compare(account, name, first, second))
    return {"score": round(score, 6)}


# --- admin ---
@router.get("/admin/accounts", tags=["admin"])
def admin_list_accounts(_admin: AdminDep, accounts: Accounts) -> dict[str, Any]:
    found = accounts.list_accounts()
    return {"accounts": [{"id": a.id, "name": a.name, "is_admin": a.is_admin} for a in found]}


@router.post("/admin/accounts", tags=["admin"], openapi_extra=r.CreateAccount.openapi())
def admin_create_account(
    _admin: AdminDep, accounts: Accounts, body: Annotated[r.CreateAccount, Depends(r.CreateAccount.parsed)]
) -> dict[str, Any]:
    account, key = accounts.create_account(body.name or "")
    return {
        "account_id": account.id,
        "name": account.name,
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
    }


@router.post("/admin/accounts/{account_id}/keys", tags=["admin"], openapi_extra=r.NoFields.openapi())
def admin_create_key(account_id: str, _admin: AdminDep, accounts: Accounts) -> dict[str, Any]:
    key = accounts.create_access_key(account_id)
    return {
        "account_id": account_id,
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
    }


@router.post("/admin/keys/{key_id}/disable", tags=["admin"], openapi_extra=r.NoFields.openapi())
def admin_disable_key(key_id: str, _admin: AdminDep, accounts: Accounts) -> dict[str, Any]:
    accounts.set_access_key_disabled(key_id, True)
    return {"access_key_id": key_id, "disabled": True}


@router.post("/admin/instances", tags=["admin"], openapi_extra=r.CreateInstance.openapi())
def admin_create_instance(
    _admin: AdminDep,
    billing: Billing,
    limits: InstanceLimits,
    body: Annotated[r.CreateInstance, Depends(r.CreateInstance.parsed)],
) -> dict[str, Any]:
    """An operator grant: an instance of any size at no charge, held for `months` (default 12)."""
    assert body.capacity is not None and body.qps is not None  # the model refused a body without them
    instance = billing.orders.grant(
        body.account_id or "",
        body.name or "",
        capacity=body.capacity,
        qps=body.qps,
        months=body.months or 12,
        service_type=ServiceType.PRODUCT if body.service_type == "product" else ServiceType.GENERIC,
    )
    limits.set_operation_limits(
        instance.id, add_qps=body.add_qps, delete_qps=body.delete_qps, update_qps=body.update_qps
    )
    return instance_json(instance, 0)
