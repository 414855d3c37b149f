"""Duplicate reports over REST: which pictures of an instance are copies of each other.

* ``POST /v1/instances/{name}/duplicates`` starts a report (body: optional ``threshold``, 0.5-1.0, default
  0.75: see lookalike.domain.duplicates); 409 while one runs. The scan runs in the background.
* ``GET /v1/instances/{name}/duplicates`` the newest report; ``GET .../duplicates/{id}`` one report: status
  (PROCESSING, SUCCESS, FAIL), ``progress`` 0-1, ``scanned``/``total`` pictures, and once finished the
  number of ``groups`` and of ``pictures`` in them.
* ``GET .../duplicates/{id}/groups?page=1&page_size=20`` a page of groups, biggest first; the first picture
  of a group is its centre, the suggested one to keep, and every other one is a copy of it (``score``: its
  score with the centre).
* ``GET .../duplicates/{id}/csv`` the whole report as CSV: group, suggested_keep, product_id, pic_name, score.
* ``POST .../duplicates/{id}/groups/{group}/keep`` (body ``image_id``) deletes the group's other pictures.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from lookalike.api.rest import requests as r
from lookalike.api.rest.auth import AccountDep
from lookalike.api.shared.dependencies import Duplicates
from lookalike.api.shared.downloads import csv_download
from lookalike.api.shared.payload import positive_number
from lookalike.domain.errors import LookalikeError
from lookalike.service.duplicates import NO_REPORT, GroupPage, Report

router = APIRouter(prefix="/v1")


def report_json(report: Report) -> dict[str, Any]:
    task = report.task
    return {
        "id": task.id,
        "status": task.status,
        "code": task.code,
        "message": task.msg,
        "threshold": report.threshold,
        "progress": round(report.progress, 4),
        "scanned": report.scanned,
        "total": report.total,
        "groups": report.groups,
        "pictures": report.pictures,
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
    }


def page_json(page: GroupPage) -> dict[str, Any]:
    return {
        "report": report_json(page.report),
        "page": page.page_number,
        "page_size": page.page_size,
        "total_groups": page.report.groups,
        "groups": [
            {
                "group": g.group_no,
                "pictures": [
                    {
                        "image_id": m.record.id,
                        "product_id": m.record.product_id,
                        "pic_name": m.record.pic_name,
                        "score": round(m.score, 6),
                    }
                    for m in g.members
                ],
            }
            for g in page.groups
        ],
    }


@router.post(
    "/instances/{name}/duplicates", tags=["duplicates"], openapi_extra=r.StartDuplicateReport.openapi()
)
async def start_report(
    name: str,
    account: AccountDep,
    reports: Duplicates,
    body: Annotated[r.StartDuplicateReport, Depends(r.StartDuplicateReport.parsed)],
) -> dict[str, Any]:
    threshold: object = body.threshold  # as sent: checked by the service
    return report_json(await run_in_threadpool(lambda: reports.start(account, name, threshold)))


@router.get("/instances/{name}/duplicates", tags=["duplicates"])
def latest_report(name: str, account: AccountDep, reports: Duplicates) -> dict[str, Any]:
    found = reports.report(account, name, rate_limited=False)  # polled for progress
    if found is None:
        raise LookalikeError(NO_REPORT, "This instance has no duplicate report yet.", status=404)
    return report_json(found)


@router.get("/instances/{name}/duplicates/{report_id}", tags=["duplicates"])
def one_report(name: str, report_id: str, account: AccountDep, reports: Duplicates) -> dict[str, Any]:
    number = positive_number(report_id, "report id")
    found = reports.report(account, name, number, rate_limited=False)
    assert found is not None  # a named report that does not exist raised 404
    return report_json(found)


@router.get("/instances/{name}/duplicates/{report_id}/groups", tags=["duplicates"])
def report_groups(
    name: str,
    report_id: str,
    account: AccountDep,
    reports: Duplicates,
    query: Annotated[r.GroupsQuery, Query()],
) -> dict[str, Any]:
    number = positive_number(query.page, "page", 9)
    size = positive_number(query.page_size, "page_size", 9)
    found = reports.groups(
        account, name, positive_number(report_id, "report id"), page_number=number, page_size=size
    )
    return page_json(found)


@router.get("/instances/{name}/duplicates/{report_id}/csv", tags=["duplicates"])
def report_csv(name: str, report_id: str, account: AccountDep, reports: Duplicates) -> StreamingResponse:
    number = positive_number(report_id, "report id")
    return csv_download(reports.csv_lines(account, name, number), number)


@router.post(
    "/instances/{name}/duplicates/{report_id}/groups/{group}/keep",
    tags=["duplicates"],
    openapi_extra=r.KeepOne.openapi(),
)
async def keep_one(
    name: str,
    report_id: str,
    group: str,
    account: AccountDep,
    reports: Duplicates,
    body: Annotated[r.KeepOne, Depends(r.KeepOne.parsed)],
) -> dict[str, Any]:
    keep = body.image_id
    assert keep is not None  # the model refused a body without it
    number, group_no = positive_number(report_id, "report id"), positive_number(group, "group", 9)
    deleted = await run_in_threadpool(lambda: reports.keep_one(account, name, number, group_no, keep))
    return {
        "kept": keep,
        "deleted": [{"image_id": r.id, "product_id": r.product_id, "pic_name": r.pic_name} for r in deleted],
    }
