"""The HTTP client of the commands that call the API as a tenant (tenant, duplicates, import): the AccessKey
they call with, the server's answers, and its refusals as one-line errors."""

from __future__ import annotations

import argparse
import os
import time
from types import TracebackType
from typing import Any

import httpx

from lookalike.cli.errors import KEY_FIX, REFUSAL_FIXES, CliError, UsageError


def access_key(args: argparse.Namespace, command: str) -> tuple[str, str]:
    """--key-id/--secret, else the environment; a usage error (status 2) names what is missing."""
    key_id = args.key_id or os.environ.get("LOOKALIKE_ACCESS_KEY_ID")
    secret = args.secret or os.environ.get("LOOKALIKE_ACCESS_KEY_SECRET")
    if not key_id or not secret:
        raise UsageError(
            f"{command} needs --key-id/--secret or LOOKALIKE_ACCESS_KEY_ID/LOOKALIKE_ACCESS_KEY_SECRET",
            "give the AccessKey pair of the account; an operator makes one with `lookalike admin "
            "create-account NAME` or `lookalike admin create-key ACCOUNT`",
        )
    return key_id, secret


class TenantClient:
    """One AccessKey's calls to one server (basic auth, as the REST API takes it)."""

    def __init__(self, url: str, key_id: str, secret: str, *, timeout: float) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=url, auth=(key_id, secret), timeout=timeout)

    def __enter__(self) -> TenantClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, patient: bool = False, **kwargs: Any) -> httpx.Response:
        """One request; `patient` waits out 429s a few times (the console actions allow 1 call per second
        per instance, and say when to come back in Retry-After)."""
        for _ in range(10 if patient else 1):
            response = self._http.request(method, path, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(min(5.0, max(0.1, float(response.headers.get("Retry-After") or 1.0))))
        return response

    def body(self, response: httpx.Response) -> Any:
        """The answer's JSON; an answer without one is not from a Lookalike server (or it failed early)."""
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{self.url} answered HTTP {response.status_code} without a JSON body",
                "check that --url (or $LOOKALIKE_URL) points at a Lookalike server",
            ) from None

    def refusal(self, response: httpx.Response) -> CliError:
        """A refused call as one line: the service's code and message, and what to do about it."""
        try:
            body = response.json()
            code, message = str(body.get("code")), str(body.get("message"))
        except (ValueError, AttributeError):
            code, message = f"HTTP {response.status_code}", response.text[:300]
        if response.status_code == 401:
            return CliError(f"{self.url} refused the AccessKey ({code}: {message})", KEY_FIX)
        fix = REFUSAL_FIXES.get(code, f"{self.url}/docs says what each call takes")
        return CliError(f"{code}: {message}", fix)
