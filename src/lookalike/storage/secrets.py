"""Encryption at rest of AccessKey secrets under a server key (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

SERVER_KEY_ENV = "LOOKALIKE_SERVER_KEY"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        """Use $LOOKALIKE_SERVER_KEY, else a key file created once (mode 0600) in the data dir."""
        env_key = os.environ.get(SERVER_KEY_ENV)
        if env_key:
            return cls(env_key.encode())
        path = data_dir / "server.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
                handle.flush()
                os.fsync(handle.fileno())
        return cls(path.read_bytes().strip())

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str | None:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            return None


def new_access_key_id() -> str:
    # "LTAI" prefix mirrors Alibaba ids so SDK-side validation of the format never trips.
    return "LTAI" + secrets.token_hex(10)


def new_access_key_secret() -> str:
    return secrets.token_urlsafe(30)[:30]
