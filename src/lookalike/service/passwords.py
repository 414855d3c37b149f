"""Console passwords: scrypt (stdlib) with a per-password salt, in a self-describing string.

Pure functions, no I/O. The format `scrypt$n$r$p$salt$hash` (base64 parts) lets the cost grow later
without invalidating stored hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

MIN_LENGTH = 10
MAX_LENGTH = 256  # scrypt cost grows with input only slightly, but refuse absurd bodies early
_N, _R, _P = 2**14, 8, 1  # ~16 MB and ~50 ms per hash on the reference 2-core machine


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Passwords are at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Passwords are at most {MAX_LENGTH} characters."
    if not password.strip():
        return "A password cannot be only spaces."
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8")[: MAX_LENGTH * 4],
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def generate_password() -> str:
    """A random password for operator-created accounts (shown once)."""
    return secrets.token_urlsafe(15)
