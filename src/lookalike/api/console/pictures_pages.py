"""An instance's pictures: browse (filter, ProductId, pages), open one, delete it, add one; thumbnails."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from lookalike.api.console.picture_views import instance_path, tile, uploaded_file
from lookalike.api.console.web import ConsoleRoute, FormDep, SessionDep, field, redirect, render
from lookalike.api.shared.dependencies import Accounts, Images, SettingsDep
from lookalike.api.shared.payload import Payload
from lookalike.domain import errors as e
from lookalike.domain.attributes import SLOTS
from lookalike.domain.errors import LookalikeError
from lookalike.domain.loose_values import parse_int
from lookalike.domain.models import Account
from lookalike.service.images import ImageService

router = APIRouter(prefix="/console", route_class=ConsoleRoute)

PAGE_SIZE = 24
ADD_FIELDS = ("product_id", "pic_name", "category_id", *(slot.name for slot in SLOTS), "custom_content")
# The add form's "Attributes and CustomContent" part starts open when one of them holds a value.
_MORE_FIELDS = (*(slot.name for slot in SLOTS), "custom_content")


def _page_number(text: str) -> int:
    try:
        number = parse_int(text or "1")
    except ValueError:
        raise LookalikeError(
            e.INVALID_PARAMETER, f"Page must be a whole number, got {text[:20]!r}."
        ) from None
    if number < 1:
        raise LookalikeError(e.INVALID_PARAMETER, "Pages are numbered from 1.")
    return number


def _image_id(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise LookalikeError(e.PIC_NOT_EXIST, "The specified image does not exist.")
    return int(text)


def _listing(
    images: ImageService, account: Account, name: str, filter_text: str, product_id: str, page_text: str
) -> tuple[dict[str, Any], int]:
    """The grid's context, and the page's status (400 with the filter's or page's message)."""
    context: dict[str, Any] = {
        "filter": filter_text,
        "product_id": product_id,
        "tiles": [],
        "total": 0,
        "page": 1,
        "pages": 1,
    }
    try:
        page = _page_number(page_text)
        listed = images.list_pictures(
            account,
            name,
            filter=filter_text or None,
            product_id=product_id or None,
            start=(page - 1) * PAGE_SIZE,
            num=PAGE_SIZE,
        )
    except LookalikeError as exc:
        if exc.code == e.INVALID_INSTANCE:
            raise  # a stranger's instance answers like an unknown one: the error page
        context["list_error"] = exc.message
        return context, exc.http_status
    pages = max(1, -(-listed.total // PAGE_SIZE))
    context.update(
        total=listed.total,
        page=page,
        pages=pages,
        status=listed.instance.status,
        tiles=[tile(name, r, r.id in listed.with_thumbnail) for r in listed.records],
    )
    if page > pages:
        context["past_end"] = True
    return context, 200


def _pictures_page(
    request: Request,
    images: ImageService,
    thumbnails_on: bool,
    account: Account,
    name: str,
    *,
    filter_text: str = "",
    product_id: str = "",
    page_text: str = "1",
    add_values: dict[str, str] | None = None,
    add_error: str | None = None,
    add_status: int = 200,
) -> Response:
    listing, status = _listing(images, account, name, filter_text, product_id, page_text)
    context = {
        "name": name,
        "section": "pictures",
        "base": instance_path(name),
        "add": add_values or {},
        "add_more_open": any((add_values or {}).get(key) for key in _MORE_FIELDS),
        "attribute_slots": SLOTS,
        "add_error": add_error,
        "thumbnails_on": thumbnails_on,
        **listing,
    }
    return render(request, "pictures.html", context, status=add_status if add_error else status)


@router.get("/instances/{name}/pictures", include_in_schema=False)
def pictures(
    request: Request,
    name: str,
    session: SessionDep,
    images: Images,
    config: SettingsDep,
    filter: str = "",
    product_id: str = "",
    page: str = "1",
) -> Response:
    return _pictures_page(
        request,
        images,
        config.thumbnails,
        session.account,
        name,
        filter_text=filter.strip(),
        product_id=product_id.strip(),
        page_text=page,
    )


@router.post("/instances/{name}/pictures", include_in_schema=False)
async def add_picture(
    request: Request,
    name: str,
    session: SessionDep,
    form: FormDep,
    accounts: Accounts,
    images: Images,
    config: SettingsDep,
) -> Response:
    account = session.account
    accounts.instance_for(account, name)  # an unknown or stranger's instance: the error page, nothing else
    values = {key: field(form, key) for key in ADD_FIELDS}
    try:
        picture = await uploaded_file(form, "picture")
        payload = Payload(fields={k: v for k, v in values.items() if v != ""})
        category_id = payload.integer("category_id", code=e.INVALID_CATEGORY)
        attributes = payload.attributes()
        result = await run_in_threadpool(
            lambda: images.add_image(
                account,
                name,
                product_id=values["product_id"],
                pic_name=values["pic_name"],
                picture=picture,
                category_id=category_id,
                attributes=attributes,
                custom_content=values["custom_content"],
            )
        )
    except LookalikeError as exc:
        return _pictures_page(
            request,
            images,
            config.thumbnails,
            account,
            name,
            add_values=values,
            add_error=exc.message,
            add_status=exc.http_status,
        )
    verb = "Added" if result.created else "Replaced"
    notice = f"{verb} picture {values['pic_name']} of product {values['product_id']}."
    return redirect(request, instance_path(name, "pictures", str(result.image_id)), notice)


@router.get("/instances/{name}/pictures/{image_id}", include_in_schema=False)
def picture(request: Request, name: str, image_id: str, session: SessionDep, images: Images) -> Response:
    record = images.picture(session.account, name, _image_id(image_id))
    has_thumbnail = record.id in images.thumbnails_for(session.account, name, [record.id])
    categories = dict(images.categories())
    context = {
        "name": name,
        "section": "pictures",
        "base": instance_path(name),
        "tile": tile(name, record, has_thumbnail),
        "category_name": categories.get(record.category_id, ""),
    }
    return render(request, "picture.html", context)


@router.post("/instances/{name}/pictures/{image_id}/delete", include_in_schema=False)
async def delete_picture(
    request: Request, name: str, image_id: str, session: SessionDep, _form: FormDep, images: Images
) -> Response:
    record = images.picture(session.account, name, _image_id(image_id))
    # Through the data-plane delete: its rate limit, status gate and change log apply as for the API.
    deleted = await run_in_threadpool(
        lambda: images.delete_images(
            session.account, name, product_id=record.product_id, pic_name=record.pic_name
        )
    )
    notice = (
        f"Deleted picture {record.pic_name} of product {record.product_id}."
        if deleted
        else "That picture was already gone."
    )
    return redirect(request, instance_path(name, "pictures"), notice)


@router.get("/instances/{name}/thumbnails/{image_id}", include_in_schema=False)
def thumbnail(name: str, image_id: str, session: SessionDep, images: Images) -> Response:
    data = images.thumbnail(session.account, name, _image_id(image_id))
    if data is None:
        raise LookalikeError(e.PIC_NOT_EXIST, "This picture has no thumbnail.")
    # Private: another user of a shared proxy must never get it; the URL is versioned (see thumbnail_url).
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
