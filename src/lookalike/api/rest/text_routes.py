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

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from lookalike.api.rest import requests as r
from lookalike.api.rest.auth import AccountDep
from lookalike.api.rest.routes import search_json
from lookalike.api.shared.dependencies import TextSearch

router = APIRouter(prefix="/v1")


@router.post("/instances/{name}/search/text", tags=["search"], openapi_extra=r.SearchByText.openapi())
async def search_by_text(
    name: str,
    account: AccountDep,
    svc: TextSearch,
    body: Annotated[r.SearchByText, Depends(r.SearchByText.parsed)],
) -> dict[str, Any]:
    options = body.search_options()
    result = await run_in_threadpool(lambda: svc.search(account, name, body.text, options))
    return search_json(result)
