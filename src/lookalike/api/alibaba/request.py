"""One parsed Alibaba API request: where every parameter travelled, and the merged view actions read.

The official SDKs put some parameters in the query and the rest in a urlencoded form body, and which
goes where differs per action and per SDK generation, so actions read the MERGED view (the form body,
with the query filling in); the signature checks read the raw parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from lookalike.config import RequestLimits
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.loose_values import ALIBABA_YES_NO, parse_bool, parse_int

ROA_PATHS = {
    "/v2/image/add": "AddImage",
    "/v2/image/search": "SearchImage",
    "/v2/image/delete": "DeleteImage",
}


@dataclass
class AcsRequest:
    method: str
    path: str
    query: list[tuple[str, str]]  # decoded, in wire order
    form: list[tuple[str, str]]  # decoded urlencoded body ([] for other content types)
    headers: dict[str, str]  # lower-cased names
    body: bytes
    raw_query: str
    action: str = ""
    version: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def style(self) -> str:
        """ "roa" for the 2019-03-25 paths, else "rpc"."""
        return "roa" if self.path in ROA_PATHS else "rpc"

    # --- typed access to the merged parameters ---
    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def integer(self, name: str, code: str = e.INVALID_PARAMETER) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return parse_int(value)
        except ValueError:
            raise LookalikeError(
                code, f"The specified parameter {name} is not valid: {value[:40]!r}."
            ) from None

    def boolean(self, name: str, default: bool) -> bool:
        """SDKs send Python's True/False, Java's true/false: compare case-insensitively."""
        value = self.text(name)
        if value is None:
            return default
        try:
            return parse_bool(value, ALIBABA_YES_NO)
        except ValueError:
            raise LookalikeError(
                e.INVALID_PARAMETER, f"The specified parameter {name} must be true or false."
            ) from None


def _parse_pairs(text: str, max_fields: int, where: str) -> list[tuple[str, str]]:
    if text.count("&") >= max_fields:  # refused before any pair is decoded
        raise LookalikeError(e.INVALID_PARAMETER, f"The {where} has more than {max_fields} fields.")
    return parse_qsl(text, keep_blank_values=True, strict_parsing=False)


def _parse_form(body: bytes, max_fields: int) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise LookalikeError(e.INVALID_PARAMETER, "The form body is not UTF-8.") from None
    return _parse_pairs(text, max_fields, "form body")


async def parse_request(request: Request, max_fields: int = RequestLimits().max_form_fields) -> AcsRequest:
    body = await request.body()  # bounded while read (lookalike.api.limits)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form: list[tuple[str, str]] = []
    if body and content_type in ("application/x-www-form-urlencoded", ""):
        # A worker thread: several MB of form must not stall the event loop (and every other request).
        form = await run_in_threadpool(_parse_form, body, max_fields)
    raw_query = request.url.query
    query = _parse_pairs(raw_query, max_fields, "query string")
    headers = {k.lower(): v for k, v in request.headers.items()}
    parsed = AcsRequest(
        method=request.method.upper(),
        path=request.url.path,
        query=query,
        form=form,
        headers=headers,
        body=body,
        raw_query=raw_query,
    )
    # Dispatch (reference §3.3): x-acs-* headers, then Action/Version in the query, then the ROA path.
    query_map = dict(query)
    parsed.action = headers.get("x-acs-action") or query_map.get("Action") or ROA_PATHS.get(parsed.path, "")
    parsed.version = (
        headers.get("x-acs-version")
        or query_map.get("Version")
        or ("2019-03-25" if parsed.path in ROA_PATHS else "")
    )
    merged: dict[str, str] = {}
    for key, value in form:
        merged[key] = value
    for key, value in query:
        merged.setdefault(key, value)
    parsed.params = merged
    return parsed
