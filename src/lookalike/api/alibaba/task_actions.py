"""The Alibaba console task actions: DumpMeta, DumpMetaList, IncreaseInstance, IncreaseList.

Thin: parameters -> TaskService -> the response shapes of reference §4. Every rule (one running task per
instance, bucket and path checks, the callback allow-list, paging limits, the 1/s console rate limit)
lives in service/tasks.py. `Id` is a string in the two start answers and an int in the lists, and
`UtcCreate` is epoch milliseconds as a string while `UtcModified` is an int, as the SDK models declare.
"""

from __future__ import annotations

from typing import Any

from lookalike.api.alibaba.actions import V2020, epoch_ms, instance_name
from lookalike.api.alibaba.dispatch import Context, action
from lookalike.api.alibaba.request import AcsRequest
from lookalike.service.tasks import TaskPage, TaskView


def _times(view: TaskView) -> dict[str, Any]:
    return {"UtcCreate": epoch_ms(view.task.created_at), "UtcModified": int(epoch_ms(view.task.updated_at))}


def _page(page: TaskPage) -> dict[str, Any]:
    return {"PageNumber": page.page_number, "PageSize": page.page_size, "TotalCount": page.total}


@action(V2020, "DumpMeta")
def dump_meta(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    task = ctx.services.tasks.start_dump(ctx.account, instance_name(req))
    return {"Success": True, "Data": {"DumpMetaStatus": task.status, "Id": str(task.id)}}


@action(V2020, "DumpMetaList")
def dump_meta_list(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    page = ctx.services.tasks.list_dumps(
        ctx.account,
        instance_name(req),
        task_id=req.integer("Id"),
        page_number=req.integer("PageNumber"),
        page_size=req.integer("PageSize"),
    )
    items = [
        {
            "Code": view.task.code,
            "Id": view.task.id,
            "MetaUrl": view.url,
            "Msg": view.task.msg,
            "Status": view.task.status,
            **_times(view),
        }
        for view in page.items
    ]
    return {"Data": {"DumpMetaList": items, **_page(page)}}


@action(V2020, "IncreaseInstance")
def increase_instance(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    task = ctx.services.tasks.start_increase(
        ctx.account,
        instance_name(req),
        bucket_name=req.text("BucketName"),
        path=req.text("Path"),
        callback_address=req.text("CallbackAddress"),
    )
    return {"Success": True, "Data": {"Id": str(task.id), "IncrementStatus": task.status}}


@action(V2020, "IncreaseList")
def increase_list(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    page = ctx.services.tasks.list_increases(
        ctx.account,
        instance_name(req),
        task_id=req.integer("Id"),
        bucket_name=req.text("BucketName"),
        path=req.text("Path"),
        page_number=req.integer("PageNumber"),
        page_size=req.integer("PageSize"),
    )
    items = [
        {
            "BucketName": view.task.bucket_name or "",
            "CallbackAddress": view.task.callback_address or "",
            "Code": view.task.code,
            "ErrorUrl": view.url,
            "Id": view.task.id,
            "Msg": view.task.msg,
            "Path": view.task.path or "",
            "Status": view.task.status,
            **_times(view),
        }
        for view in page.items
    ]
    return {"Data": {"Increments": {"Instance": items}, **_page(page)}}
