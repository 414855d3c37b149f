"""`lookalike import --engine ray --ray-address`: a cluster that cannot be reached, said at once (Ray itself
retries its connection for minutes before it gives up)."""

from __future__ import annotations

import socket

from lookalike.cli.errors import CliError

CLIENT_PORT = 10001  # Ray Client's port, for ray://HOST without one
CONNECT_TIMEOUT_S = 5.0
RAY_FIX = (
    "start the cluster (`ray start --head` on its head node) and give the head's address, e.g. "
    "--ray-address 10.0.0.5:6379; or leave --ray-address and RAY_ADDRESS unset for a local Ray"
)


def ensure_reachable(address: str | None) -> None:
    """Open (and close) a TCP connection to the address's host and port; `auto`, `local` and no address are
    Ray's to resolve."""
    if not address or address in ("auto", "local"):
        return
    text = address.removeprefix("ray://")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        if not address.startswith("ray://"):
            return  # no port: Ray says what it makes of it
        host, port_text = text, str(CLIENT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        raise CliError(f"--ray-address {address!r} has no port number", RAY_FIX) from None
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or exc
        raise CliError(f"cannot reach the Ray cluster at {address} ({reason})", RAY_FIX) from None
