"""SearchImageByText (2020-12-14): text -> pictures, through the offline text search service.

Response per reference §4: `Auctions` WITHOUT `SortExprValues`, `Head` (DocsFound = returned,
DocsReturn = matched, as for the other searches), `Msg`, and a `PicInfo` that carries only
`AllCategories`. Parameters: Text (required, <= 512 characters), Num, Start, Filter,
DistinctProductId, ScoreThreshold (query string, merged by the request parser).
"""

from __future__ import annotations

from typing import Any

from lookalike.api.alibaba.actions import V2020, instance_name, record_json
from lookalike.api.alibaba.dispatch import Context, action
from lookalike.api.alibaba.request import AcsRequest
from lookalike.domain import errors as e
from lookalike.service.images import SearchOptions
from lookalike.vision.categories import all_categories


def text_search_options(req: AcsRequest) -> SearchOptions:
    num = req.integer("Num", e.INVALID_NUM)
    start = req.integer("Start", e.INVALID_START)
    return SearchOptions(
        num=10 if num is None else num,
        start=0 if start is None else start,
        filter=req.text("Filter"),
        distinct_product_id=req.boolean("DistinctProductId", False),
        score_threshold=req.text("ScoreThreshold"),
    )


@action(V2020, "SearchImageByText")
def search_image_by_text(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    name = instance_name(req)
    # params.get, not req.text: an empty Text must reach the service's InvalidText check as "".
    text = req.params.get("Text")
    result = ctx.services.text_search.search(ctx.account, name, text, text_search_options(req))
    return {
        "Success": True,
        "Code": 0,
        "Msg": "success",
        "Head": {
            "DocsFound": len(result.hits),  # returned (sic)
            "DocsReturn": result.matched,  # matched in the instance (sic)
            "SearchTime": result.search_time_ms,
        },
        "PicInfo": {"AllCategories": [{"Id": cid, "Name": cname} for cid, cname in all_categories()]},
        "Auctions": [{**record_json(hit.record), "Score": hit.score} for hit in result.hits],
    }
