"""Every failure of a command as one line on stderr: what went wrong, then how to fix it.

`lookalike: error: <what> — <how to fix>`, exit status 2 for a usage mistake and 1 otherwise. The
translations below turn the exceptions a command can meet (settings, database, files, HTTP, refusals of the
service) into that line; anything else is reported as unexpected, with the hint to re-run with --debug,
which prints the traceback too.
"""

from __future__ import annotations

import errno
from typing import Final

from lookalike.config import ConfigError
from lookalike.domain import errors as codes
from lookalike.domain.errors import LookalikeError

USAGE: Final = 2  # argparse's status for a command line it cannot use
FAILED: Final = 1

DEBUG_HINT: Final = "re-run with --debug (or LOOKALIKE_DEBUG=1) to see the traceback"
KEY_FIX: Final = (
    "check --key-id/--secret (or LOOKALIKE_ACCESS_KEY_ID/LOOKALIKE_ACCESS_KEY_SECRET); an operator makes "
    "one with `lookalike admin create-key ACCOUNT`"
)
DATABASE_FIX: Final = (
    "check --database-url (or LOOKALIKE_DATABASE_URL, or database_url in the --config file) and that the "
    "database server is running and reachable"
)
SERVER_FIX: Final = "start the server (`lookalike serve`) or point --url (or $LOOKALIKE_URL) at it"

# What to do about the service's refusals that the commands meet most (the message says what happened).
REFUSAL_FIXES: Final[dict[str, str]] = {
    codes.INVALID_INSTANCE: "check the instance's name (the console lists an account's instances)",
    codes.INSTANCE_ALREADY_EXISTS: "pick another name, or use the instance that exists",
    codes.ACCOUNT_NOT_FOUND: "name an account that exists: `lookalike admin list-accounts`",
    codes.INVALID_AMOUNT: 'write a decimal amount in the catalogue currency, e.g. "500.00"',
    codes.INVALID_CATALOGUE: "correct the file and check it with `lookalike admin validate-catalogue FILE`",
    codes.INVALID_ACCESS_KEY: KEY_FIX,
    codes.ACCESS_KEY_DISABLED: KEY_FIX,
    codes.SIGNATURE_MISMATCH: KEY_FIX,
    codes.MISSING_CREDENTIALS: KEY_FIX,
    codes.INSTANCE_OVER_QUOTA: "delete pictures first, or change to a larger package "
    "(`lookalike tenant quote change ...`)",
    codes.DENIED_REQUEST: "wait a moment and run it again (the instance's rate limit)",
}


class CliError(Exception):
    """A failure a command explains itself: `what` went wrong and the `fix`; `status` is the exit status."""

    def __init__(self, what: str, fix: str | None = None, *, status: int = FAILED) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix
        self.status = status

    def line(self) -> str:
        what = " ".join(self.what.split())  # one line, whatever the message held
        return f"lookalike: error: {what}" + (f" — {self.fix}" if self.fix else "")


class UsageError(CliError):
    """A command line that cannot work as given (exit status 2, as argparse's own refusals)."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        super().__init__(what, fix, status=USAGE)


def explain(exc: BaseException, command: str) -> CliError:
    """`exc` as the one line a person reads; `command` ("lookalike admin top-up") names the help to read."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ConfigError):
        return CliError(
            f"configuration: {exc}",
            "correct that setting (README: Configuration reference) or remove it to use its default",
            status=USAGE,
        )
    if isinstance(exc, LookalikeError):
        return CliError(f"{exc.code}: {exc.message}", REFUSAL_FIXES.get(exc.code, f"see `{command} --help`"))
    for translate in (_manifest_error, _database_error, _http_error, _missing_module):
        found = translate(exc)
        if found is not None:
            return found
    if isinstance(exc, OSError):
        return _os_error(exc)
    return CliError(f"unexpected {type(exc).__name__}: {exc}", DEBUG_HINT + ", and report it if it is a bug")


def _manifest_error(exc: BaseException) -> CliError | None:
    from lookalike.importer import ManifestError

    if not isinstance(exc, ManifestError):
        return None
    return CliError(
        str(exc),
        'each line of a .jsonl manifest is one JSON object with a "path" (and optionally product_id, '
        "pic_name and attributes): correct that line and run the import again; done pictures are skipped",
    )


def _database_error(exc: BaseException) -> CliError | None:
    from sqlalchemy import exc as sql

    if isinstance(exc, sql.ArgumentError):  # includes NoSuchModuleError (an unknown dialect)
        return CliError(
            f"the database URL is not one SQLAlchemy can use ({exc})",
            "write it as postgresql+psycopg://USER:PASSWORD@HOST/DB, or leave database_url unset for SQLite "
            "in the data directory",
            status=USAGE,
        )
    if isinstance(exc, sql.OperationalError | sql.InterfaceError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        return CliError(f"cannot use the database: {reason}", DATABASE_FIX)
    return None


def _http_error(exc: BaseException) -> CliError | None:
    import httpx

    if not isinstance(exc, httpx.TransportError):
        return None
    try:
        url = exc.request.url
        where = f"{url.scheme}://{url.netloc.decode('ascii')}"  # the server, not the call's path
    except RuntimeError:  # an error raised before a request existed
        where = "the server"
    if isinstance(exc, httpx.TimeoutException):
        return CliError(f"{where} did not answer in time ({type(exc).__name__})", SERVER_FIX)
    return CliError(f"cannot reach {where} ({exc})", SERVER_FIX)


# Optional dependencies and the extra that installs each (pyproject.toml).
EXTRAS: Final[dict[str, str]] = {"psycopg": "scale", "redis": "scale", "pymilvus": "scale", "ray": "ray"}


def _missing_module(exc: BaseException) -> CliError | None:
    if not isinstance(exc, ModuleNotFoundError) or exc.name is None:
        return None
    extra = EXTRAS.get(exc.name.split(".")[0])
    fix = (
        f"install it: pip install 'lookalike[{extra}]'" if extra else "reinstall lookalike: pip install -e ."
    )
    return CliError(f"the Python package {exc.name!r} is not installed", fix)


def _os_error(exc: OSError) -> CliError:
    where = f": {exc.filename}" if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return CliError(f"address already in use ({exc})", "stop what holds that port or choose another one")
    if isinstance(exc, FileNotFoundError):
        return CliError(f"no such file or directory{where}", "check the path (relative ones start here)")
    if isinstance(exc, PermissionError):
        return CliError(f"permission denied{where}", "check the owner and mode of that file or directory")
    return CliError(f"{reason}{where}", "check the path and the disk")
