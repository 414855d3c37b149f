"""The upload listener's certificate: the operator's, or a self-signed one made once for the public host."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Final

TLS_DIR: Final = "upload-tls"


# --- TLS ---


def _host_of(public_host: str) -> str:
    host = public_host.strip()
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.lower()


def _cert_names(cert_path: Path, key_path: Path) -> set[str]:
    """The names a generated pair covers; empty when the files are unreadable or do not belong together
    (a crash between writing the key and the certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return set()
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        return set()
    names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return names


def ensure_tls_files(data_dir: Path, public_host: str | None) -> tuple[Path, Path]:
    """A self-signed certificate + key for the upload listener under ``<data_dir>/upload-tls/``.

    Generated once (EC P-256, 10 years, SAN: localhost, 127.0.0.1 and the public host's name) and reused;
    regenerated only when the public host is not among its names. Clients must trust it explicitly:
    ``RuntimeOptions(ignore_ssl=True)``, or ``RuntimeOptions(ca=".../upload-tls/cert.pem")``.
    """
    folder = data_dir / TLS_DIR
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    wanted = {"localhost", "127.0.0.1"}
    if public_host:
        wanted.add(_host_of(public_host))
    if wanted <= _cert_names(cert_path, key_path):
        return cert_path, key_path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in sorted(wanted):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lookalike upload listener")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _write_private(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


# --- the listener ---
