"""Native text search: POST /v1/instances/{name}/search/text.

Body (JSON, form or query): ``text`` (required, <= 512 characters) and the usual search options
``num``, ``start``, ``category_id``, ``filter``, ``distinct_product_id``, ``score_threshold``.
The answer has the shape of the other searches (``pic_info`` is null). A hit's score is the larger of
the cosine between the text's projection and the picture's embedding (well below a copy's score for a
relevant picture) and the share of the text's words that its ProductId, PicName and CustomContent hold
(1.0 when all of them): see lookalike.service.text_search.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from lookalike.api.rest.auth import current_account, services
from lookalike.api.rest.payload import read_payload
from lookalike.api.rest.routes import search_json, search_options
from lookalike.domain.models import Account

router = APIRouter(prefix="/v1")
AccountDep = Annotated[Account, Depends(current_account)]


@router.post("/instances/{name}/search/text", tags=["search"])
async def search_by_text(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    payload = await read_payload(request)
    svc = services(request).text_search
    text = payload.text("text")
    options = search_options(payload)
    result = await run_in_threadpool(lambda: svc.search(account, name, text, options))
    return search_json(result)
