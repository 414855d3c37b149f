"""A port that cannot be listened on, said before the server loads its model rather than after."""

from __future__ import annotations

import errno
import socket

from lookalike.cli.errors import CliError


def ensure_free(host: str, port: int, *, port_option: str, host_option: str) -> None:
    """Bind (host, port) once and let go: uvicorn would otherwise log the failure and exit only after the
    whole start-up (the model, the indexes)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise listen_error(exc, host, port, port_option=port_option, host_option=host_option) from exc


def listen_error(exc: OSError, host: str, port: int, *, port_option: str, host_option: str) -> CliError:
    """Why (host, port) could not be bound, and which option changes it."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return CliError(
            f"{where} is already in use",
            f"stop what listens there (another `lookalike serve`?) or choose another port with {port_option}",
        )
    if exc.errno == errno.EACCES:
        return CliError(
            f"not allowed to listen on {where} ({exc.strerror})",
            f"choose a port above 1023 with {port_option}, or give the process the right to bind it",
        )
    return CliError(
        f"cannot listen on {where} ({exc.strerror or exc})",
        f"give {host_option} an address of this machine (127.0.0.1, 0.0.0.0 for every interface, ::)",
    )
