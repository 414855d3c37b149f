"""An instance's duplicate report: start one, watch its progress, see each group side by side, keep one.

"Keep one" asks first: the group's form leads to a confirmation page that lists what will be deleted, and
only its POST (with the session's CSRF token) deletes, through the data-plane delete (its rate limit and
status gate apply as for the API).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from lookalike.api.console.picture_views import instance_path, tile
from lookalike.api.console.web import ConsoleRoute, FormDep, SessionDep, field, redirect, render
from lookalike.api.shared.dependencies import Accounts, Duplicates, Images
from lookalike.api.shared.downloads import csv_download
from lookalike.api.shared.payload import positive_number
from lookalike.domain import errors as e
from lookalike.domain.duplicates import DEFAULT_THRESHOLD
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.duplicates import DuplicateReports, GroupView
from lookalike.service.images import ImageService

router = APIRouter(prefix="/console", route_class=ConsoleRoute)

GROUPS_PER_PAGE = 10


def _tiles(images: ImageService, account: Account, name: str, group: GroupView) -> list[dict[str, Any]]:
    ids = [m.record.id for m in group.members]
    with_thumbnail = images.thumbnails_for(account, name, ids)
    return [tile(name, m.record, m.record.id in with_thumbnail, m.score) for m in group.members]


def _page(
    request: Request,
    reports: DuplicateReports,
    images: ImageService,
    account: Account,
    name: str,
    page_text: str,
    **extra: Any,
) -> Response:
    report = reports.report(account, name, rate_limited=False)
    context: dict[str, Any] = {
        "name": name,
        "section": "duplicates",
        "base": instance_path(name),
        "report": report,
        "groups": [],
        "page": 1,
        "pages": 1,
        "default_threshold": DEFAULT_THRESHOLD,
        **extra,
    }
    status = 200
    if report is not None and report.status == "SUCCESS":
        try:
            page = positive_number(page_text or "1", "Page", 9)
            found = reports.groups(account, name, report.task.id, page_number=page, page_size=GROUPS_PER_PAGE)
        except LookalikeError as exc:
            context["list_error"] = exc.message
            status = exc.http_status
        else:
            context.update(
                page=page,
                pages=max(1, -(-report.groups // GROUPS_PER_PAGE)),
                groups=[
                    {"group_no": g.group_no, "tiles": _tiles(images, account, name, g)} for g in found.groups
                ],
            )
    return render(request, "duplicates.html", context, status=extra.get("status", status))


@router.get("/instances/{name}/duplicates", include_in_schema=False)
def duplicates(
    request: Request, name: str, session: SessionDep, reports: Duplicates, images: Images, page: str = "1"
) -> Response:
    return _page(request, reports, images, session.account, name, page)


@router.post("/instances/{name}/duplicates", include_in_schema=False)
async def start_report(
    request: Request,
    name: str,
    session: SessionDep,
    form: FormDep,
    accounts: Accounts,
    reports: Duplicates,
    images: Images,
) -> Response:
    account = session.account
    accounts.instance_for(account, name)  # a stranger's instance: the error page only
    text = field(form, "threshold").strip()
    try:
        try:
            threshold = float(text) if text else None
        except ValueError:
            raise LookalikeError(
                e.INVALID_PARAMETER, "Threshold must be a number between 0.5 and 1."
            ) from None
        await run_in_threadpool(lambda: reports.start(account, name, threshold))
    except LookalikeError as exc:
        return _page(
            request,
            reports,
            images,
            account,
            name,
            "1",
            start_error=exc.message,
            threshold=text,
            status=exc.http_status,
        )
    return redirect(request, instance_path(name, "duplicates"), "Duplicate report started.")


@router.get("/instances/{name}/duplicates/{report_id}.csv", include_in_schema=False)
def report_csv(name: str, report_id: str, session: SessionDep, reports: Duplicates) -> Response:
    number = positive_number(report_id, "The report id")
    return csv_download(reports.csv_lines(session.account, name, number), number)


@router.get("/instances/{name}/duplicates/{report_id}/groups/{group}/keep", include_in_schema=False)
def confirm_keep(
    request: Request,
    name: str,
    report_id: str,
    group: str,
    session: SessionDep,
    reports: Duplicates,
    images: Images,
    image_id: str = "",
) -> Response:
    account = session.account
    number, group_no = positive_number(report_id, "The report id"), positive_number(group, "The group", 9)
    view = reports.group(account, name, number, group_no)
    keep = positive_number(image_id, "The picture to keep") if image_id else view.members[0].record.id
    tiles = _tiles(images, account, name, view)
    kept = [t for t in tiles if t["record"].id == keep]
    if not kept:
        raise LookalikeError(e.INVALID_PARAMETER, "The picture to keep is not in this group.")
    context = {
        "name": name,
        "section": "duplicates",
        "base": instance_path(name),
        "report_id": report_id,
        "group_no": view.group_no,
        "keep": kept[0],
        "doomed": [t for t in tiles if t["record"].id != keep],
    }
    return render(request, "duplicates_keep.html", context)


@router.post("/instances/{name}/duplicates/{report_id}/groups/{group}/keep", include_in_schema=False)
async def keep_one(
    request: Request,
    name: str,
    report_id: str,
    group: str,
    session: SessionDep,
    form: FormDep,
    reports: Duplicates,
) -> Response:
    account = session.account
    number, group_no = positive_number(report_id, "The report id"), positive_number(group, "The group", 9)
    keep = positive_number(field(form, "image_id"), "The picture to keep")
    deleted = await run_in_threadpool(lambda: reports.keep_one(account, name, number, group_no, keep))
    notice = f"Kept one picture of group {group_no} and deleted {len(deleted)}: " + ", ".join(
        r.pic_name for r in deleted
    )
    return redirect(request, instance_path(name, "duplicates"), notice[:300])
