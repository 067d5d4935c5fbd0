"""The per-install TLS certificate of the LAN listener, made with `cryptography`.

A self-signed certificate (ECDSA P-256) in `<data dir>/tls/`, key mode 0600. Phones cannot
check it against a CA, so its SHA-256 fingerprint is what identifies the workstation: the
dashboard and `skinapp serve --lan` show it, the pairing link carries it, and the phone page
shows it so the person can compare (as Syncthing and LocalSend do with their device IDs).

It is made at the first LAN start and made again when it is about to expire or no longer
names the LAN address (the clinic's DHCP gave the workstation a new one).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skinapp.paths import ensure_private_dir, write_private_file

logger = logging.getLogger(__name__)

CERT_FILE = "lan-cert.pem"
KEY_FILE = "lan-key.pem"
VALID_FOR = dt.timedelta(days=825)  # the longest lifetime browsers accept for a server cert
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated upper-case hex
    spki_sha256: str  # base64 SHA-256 of the public key (Chromium's pinning format)
    names: tuple[str, ...]
    not_after: dt.datetime


def tls_dir(data_dir: Path) -> Path:
    return data_dir / "tls"


def format_fingerprint(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def fingerprint_of(cert: x509.Certificate) -> str:
    return format_fingerprint(cert.fingerprint(hashes.SHA256()))


def fingerprint_of_der(der: bytes) -> str:
    """The fingerprint of a certificate as a TLS peer sent it (`getpeercert(True)`)."""
    return fingerprint_of(x509.load_der_x509_certificate(der))


def _spki_sha256(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode("ascii")


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _san_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return ips | set(san.get_values_for_type(x509.DNSName))


def _build(names: list[str], now: dt.datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"skinapp {names[0]}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # clocks of phones drift
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _describe(cert_path: Path, key_path: Path) -> Certificate:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return Certificate(
        cert_path=cert_path,
        key_path=key_path,
        fingerprint=fingerprint_of(cert),
        spki_sha256=_spki_sha256(cert),
        names=tuple(sorted(_san_names(cert))),
        not_after=cert.not_valid_after_utc,
    )


def _still_good(cert: Certificate, names: list[str], now: dt.datetime) -> bool:
    if not cert.key_path.exists():
        return False
    return cert.not_after - now > RENEW_BEFORE and set(names) <= set(cert.names)


def load_certificate(data_dir: Path) -> Certificate | None:
    """The certificate there is, or None (no LAN start yet)."""
    folder = tls_dir(data_dir)
    if not (folder / CERT_FILE).exists():
        return None
    return _describe(folder / CERT_FILE, folder / KEY_FILE)


def ensure_certificate(
    data_dir: Path, names: list[str], now: dt.datetime | None = None
) -> Certificate:
    """The certificate for `names` (the first is the LAN address), made or renewed if needed."""
    now = now or dt.datetime.now(dt.UTC)
    current = load_certificate(data_dir)
    if current is not None and _still_good(current, names, now):
        return current
    folder = ensure_private_dir(tls_dir(data_dir))
    cert_pem, key_pem = _build(names, now)
    # Key first: a certificate never sits next to a key that is not its own.
    write_private_file(folder / KEY_FILE, key_pem.decode("ascii"))
    write_private_file(folder / CERT_FILE, cert_pem.decode("ascii"))
    made = _describe(folder / CERT_FILE, folder / KEY_FILE)
    why = "made" if current is None else "renewed"
    logger.info("%s the LAN certificate for %s (%s)", why, ", ".join(names), made.fingerprint)
    return made
