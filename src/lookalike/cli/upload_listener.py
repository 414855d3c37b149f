"""`lookalike serve --upload-port`: the HTTPS listener the Alibaba SDK's *_advance uploads post to."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.cli.errors import UsageError
from lookalike.cli.ports import listen_error
from lookalike.config import Settings

if TYPE_CHECKING:
    from lookalike.api.alibaba.upload import UploadListener
    from lookalike.service.container import Services


def upload_options(
    *, host: str, port: int, public_host: str | None, cert: str | None, key: str | None
) -> dict[str, Any]:
    """The upload settings the options give; the public host defaults to the listener's own address when
    that is a concrete one."""
    if public_host is None:
        if host in ("0.0.0.0", "::", "") or "." not in host:
            raise UsageError(
                "--upload-public-host is required when --upload-host is not a dotted address",
                "give the host:port clients reach the listener at: the SDK uploads to "
                "https://{Bucket}.{Endpoint}/, e.g. --upload-public-host uploads.example.com:8443",
            )
        public_host = f"{host}:{port}"
    if bool(cert) != bool(key):
        raise UsageError(
            "--upload-cert and --upload-key go together",
            "give both, or neither for a self-signed certificate in the data directory",
        )
    return {
        "upload_public_host": public_host,
        "upload_cert": Path(cert) if cert else None,
        "upload_key": Path(key) if key else None,
    }


def start_upload_listener(settings: Settings, services: Services, *, host: str, port: int) -> UploadListener:
    """Bind and start the listener (its certificate: the settings', else a self-signed one made once)."""
    from lookalike.api.alibaba.upload import UploadListener, ensure_tls_files

    if settings.upload_cert is not None and settings.upload_key is not None:
        cert, key = settings.upload_cert, settings.upload_key
    else:
        cert, key = ensure_tls_files(settings.data_dir, settings.upload_public_host)
    try:
        listener = UploadListener(services.uploads, certfile=cert, keyfile=key, host=host, port=port)
    except OSError as exc:
        raise listen_error(exc, host, port, port_option="--upload-port", host_option="--upload-host") from exc
    address = listener.start()
    print(
        f"Advance uploads (OSS PostObject) on https://{address}/, announced as "
        f"https://{settings.upload_public_host}/\n"
        f"  certificate: {cert} (clients trust it: RuntimeOptions(ca=...) or ignore_ssl=True)",
        flush=True,
    )
    return listener
