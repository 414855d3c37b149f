"""The search playground: search an instance with a photo (optional region, filter, category, count)."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from lookalike.api.console.picture_views import box_percentages, instance_path, tile, uploaded_file
from lookalike.api.console.web import ConsoleRoute, FormDep, SessionDep, field, render
from lookalike.api.shared.dependencies import Accounts, Images
from lookalike.api.shared.payload import Payload
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.service.images import ImageService, SearchOptions

router = APIRouter(prefix="/console", route_class=ConsoleRoute)

FORM_FIELDS = ("region", "filter", "category_id", "num")
PREVIEW_SIZE = 640  # longest side of the query photo shown with the results (made per request, never stored)


def _search_page(
    request: Request,
    images: ImageService,
    name: str,
    values: dict[str, str],
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    context = {
        "name": name,
        "section": "search",
        "base": instance_path(name),
        "values": values,
        "categories": images.categories(),
        **extra,
    }
    return render(request, "search.html", context, status=status)


@router.get("/instances/{name}/search", include_in_schema=False)
def search_form(
    request: Request, name: str, session: SessionDep, accounts: Accounts, images: Images
) -> Response:
    accounts.instance_for(session.account, name)
    return _search_page(request, images, name, {"num": "10"})


@router.post("/instances/{name}/search", include_in_schema=False)
async def search(
    request: Request, name: str, session: SessionDep, form: FormDep, accounts: Accounts, images: Images
) -> Response:
    account = session.account
    accounts.instance_for(account, name)  # a stranger's instance answers like an unknown one
    values = {key: field(form, key) for key in FORM_FIELDS}
    try:
        photo = await uploaded_file(form, "picture")
        payload = Payload(fields={k: v for k, v in values.items() if v != ""})
        num = payload.integer("num", code=e.INVALID_NUM)
        options = SearchOptions(
            num=10 if num is None else num,
            category_id=payload.integer("category_id", code=e.INVALID_CATEGORY),
            filter=values["filter"] or None,
        )
        result = await run_in_threadpool(
            lambda: images.search_by_pic(account, name, photo, options, region=values["region"] or None)
        )
        preview = await run_in_threadpool(lambda: images.preview(photo, PREVIEW_SIZE))
    except LookalikeError as exc:
        return _search_page(request, images, name, values, status=exc.http_status, error=exc.message)
    with_thumbnail = images.thumbnails_for(account, name, [h.record.id for h in result.hits])
    tiles = [tile(name, h.record, h.record.id in with_thumbnail, h.score) for h in result.hits]
    info = result.pic_info
    assert info is not None  # a search by picture always describes its query
    categories = dict(images.categories())
    query = {
        "src": "data:image/jpeg;base64," + base64.b64encode(preview.jpeg).decode("ascii"),
        "width": preview.width,
        "height": preview.height,
        "region": info.region.to_str(),
        "box": box_percentages(info.region, preview.width, preview.height),
        "category_id": info.category_id,
        "category": categories.get(info.category_id, str(info.category_id)),
    }
    return _search_page(
        request,
        images,
        name,
        values,
        tiles=tiles,
        matched=result.matched,
        query=query,
        took=result.search_time_ms,
    )
