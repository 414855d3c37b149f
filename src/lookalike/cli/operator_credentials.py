"""The operator's credentials at `lookalike serve`: made and shown once at the first start, saved 0600."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.config import Settings

if TYPE_CHECKING:
    from lookalike.service.container import Services

CREDENTIALS_FILE = "admin-credentials.json"


def save_admin_credentials(data_dir: Path, payload: dict[str, str]) -> Path:
    path = data_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, even briefly
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    return path


def announce_operator(settings: Settings, services: Services) -> None:
    """First start: the new operator account's key and console password, printed and saved; later starts:
    where they were saved (and how to give an older data directory's operator a console password)."""
    if services.bootstrap_key is not None:
        creds = {
            "account_id": services.bootstrap_key.account_id,
            "access_key_id": services.bootstrap_key.access_key_id,
            "access_key_secret": services.bootstrap_key.access_key_secret,
        }
        creds["console_user"] = settings.admin_name
        creds["console_password"] = services.console_auth.set_generated_password(
            services.bootstrap_key.account_id
        )
        path = save_admin_credentials(settings.data_dir, creds)
        print(
            f"First start: created the operator account.\n"
            f"  AccessKeyId:     {creds['access_key_id']}\n"
            f"  AccessKeySecret: {creds['access_key_secret']}\n"
            f"  Console sign-in: {creds['console_user']} / {creds['console_password']}\n"
            f"  (saved to {path}, mode 0600)",
            flush=True,
        )
        return
    print(f"Operator credentials: {settings.data_dir / CREDENTIALS_FILE}", flush=True)
    admin = services.accounts.find_admin()
    if admin is not None and not services.console_auth.has_password(admin.id):
        # Data directories from before the console: the operator has keys but no console password yet.
        print(f"  console password: lookalike admin set-password {admin.name}", flush=True)
