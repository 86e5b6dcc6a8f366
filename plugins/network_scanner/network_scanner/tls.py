"""TLS checks of one port (what sslyze and testssl.sh look at, offline and without root).

* the certificate chain as sent (subject, issuer, validity, key, signature hash, SHA-256
  fingerprint), whether each certificate is issued by the next, and whether the system
  trust store (plus an optional CA file of yours) verifies it;
* expiry (expired, not yet valid, expiring within ``warn_days``), self-signed, the name
  scanned against the certificate's names (SAN, RFC 6125 wildcards; an address against
  IP SANs);
* protocol versions accepted, one handshake per version (TLS 1.0 and 1.1 are tried with
  OpenSSL's security level 0 so this machine can offer them at all);
* weak cipher groups accepted (static RSA key exchange, SHA-1 CBC suites, 3DES, RC4, NULL,
  anonymous, export), one handshake per group limited to TLS 1.2 and below. A group this
  machine's OpenSSL cannot offer is reported as "not testable here", never as absent.

The chain comes from ``SSLObject._sslobj.get_unverified_chain()`` (CPython >= 3.10, public
from 3.13); without it only the leaf certificate is read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from network_scanner.probes import client_context

# cryptography's X.509 parts are imported by the functions that read certificates: ~30-70
# ms of every app start otherwise, for a check that runs when a scan reaches a TLS port.
if TYPE_CHECKING:
    from cryptography import x509

PROTOCOLS: list[tuple[str, ssl.TLSVersion]] = [
    ("TLSv1.0", ssl.TLSVersion.TLSv1), ("TLSv1.1", ssl.TLSVersion.TLSv1_1),
    ("TLSv1.2", ssl.TLSVersion.TLSv1_2), ("TLSv1.3", ssl.TLSVersion.TLSv1_3)]
WEAK_GROUPS: list[tuple[str, str, str]] = [
    ("export", "EXP", "export-grade ciphers (broken since FREAK/Logjam)"),
    ("null", "eNULL", "NULL ciphers (no encryption)"),
    ("anonymous", "aNULL", "anonymous key exchange (no server authentication)"),
    ("rc4", "RC4", "RC4 (biased keystream, RFC 7465 forbids it)"),
    ("3des", "3DES", "3DES (64-bit blocks, Sweet32)"),
    ("static-rsa", "kRSA", "static RSA key exchange (no forward secrecy)"),
    ("sha1-cbc", "SHA1:!kRSA:!aNULL:!eNULL:!RC4:!3DES:!EXP", "CBC suites with SHA-1 MACs"),
]


@dataclass
class CertInfo:
    subject: str
    issuer: str
    not_before: str
    not_after: str
    days_left: int
    names: list[str]
    key: str
    signature_hash: str | None
    sha256: str
    self_signed: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TlsReport:
    """The result of :func:`check_tls`, JSON-able through :meth:`to_dict`."""

    negotiated: str | None = None
    cipher: str | None = None
    chain: list[CertInfo] = field(default_factory=list)
    chain_ordered: bool | None = None
    trusted: bool | None = None
    verify_error: str | None = None
    name_checked: str | None = None
    name_matches: bool | None = None
    expired: bool = False
    not_yet_valid: bool = False
    expires_soon: bool = False
    self_signed: bool = False
    protocols: dict[str, str] = field(default_factory=dict)
    weak_ciphers: dict[str, dict[str, str | None]] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["chain"] = [c.to_dict() for c in self.chain]
        return data


def _name(name: x509.Name) -> str:
    from cryptography.x509.oid import NameOID

    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else name.rfc4514_string()


def _key(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key verifies ``cert``'s signature."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    if cert.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            assert cert.signature_hash_algorithm is not None
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except Exception:  # InvalidSignature, an unsupported padding (PSS): not proven
        return False
    return True


def cert_names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(cn[0].value)] if cn else []
    names: list[str] = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def name_matches(name: str, names: list[str]) -> bool:
    """RFC 6125: exact (case-insensitive) or a wildcard in the left-most label only;
    an address matches only an IP entry."""
    try:
        wanted_ip = ipaddress.ip_address(name)
    except ValueError:
        wanted_ip = None
    for entry in names:
        if wanted_ip is not None:
            try:
                if ipaddress.ip_address(entry) == wanted_ip:
                    return True
            except ValueError:
                continue
            continue
        entry_l, name_l = entry.lower().rstrip("."), name.lower().rstrip(".")
        if entry_l == name_l:
            return True
        if entry_l.startswith("*.") and "." in name_l:
            head, _, rest = name_l.partition(".")
            if head and rest == entry_l[2:] and rest.count(".") >= 1:
                return True
    return False


def describe(cert: x509.Certificate, now: dt.datetime) -> CertInfo:
    from cryptography.hazmat.primitives import hashes

    after = cert.not_valid_after_utc
    sig = cert.signature_hash_algorithm
    return CertInfo(
        subject=_name(cert.subject), issuer=_name(cert.issuer),
        not_before=cert.not_valid_before_utc.isoformat(), not_after=after.isoformat(),
        days_left=int((after - now).total_seconds() // 86400), names=cert_names(cert),
        key=_key(cert), signature_hash=sig.name if sig else None,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        self_signed=cert.issuer == cert.subject and _signed_by(cert, cert))


async def _handshake(address: str, port: int, ctx: ssl.SSLContext, server_name: str | None,
                     timeout: float) -> ssl.SSLObject:
    """Complete a handshake and return the SSL object (the connection is closed)."""
    async with asyncio.timeout(timeout):
        _reader, writer = await asyncio.open_connection(
            address, port, ssl=ctx, server_hostname=server_name or address,
            ssl_handshake_timeout=timeout)
    try:
        obj = writer.get_extra_info("ssl_object")
        assert obj is not None
        return obj
    finally:
        writer.close()
        try:
            async with asyncio.timeout(1):
                await writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            pass


def _chain_der(obj: ssl.SSLObject) -> list[bytes]:
    inner = getattr(obj, "_sslobj", None)
    getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            return [c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                    for c in getter() or []]
        except Exception:  # a CPython whose private API differs: the leaf still works
            pass
    leaf = obj.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _only(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext | None:
    """A client context that offers only ``version`` (and ``ciphers``); None when this
    machine's OpenSSL cannot offer that."""
    ctx = client_context()
    try:
        with warnings.catch_warnings():  # TLSv1/TLSv1_1 are deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
        if ciphers is not None:
            ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
    except (ssl.SSLError, ValueError):
        return None
    return ctx


async def check_tls(address: str, port: int, *, server_name: str | None = None,
                    timeout: float = 3.0, warn_days: int = 30, ca_file: str | None = None,
                    now: dt.datetime | None = None) -> TlsReport:
    """Run every check against ``address:port``; ``server_name`` is sent as SNI and
    checked against the certificate (else the address is)."""
    report = TlsReport(name_checked=server_name or address)
    now = now or dt.datetime.now(dt.UTC)
    try:
        obj = await _handshake(address, port, client_context(), server_name, timeout)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        report.error = f"no TLS handshake: {str(exc) or type(exc).__name__}"
        return report
    report.negotiated = obj.version()
    cipher = obj.cipher()
    report.cipher = cipher[0] if cipher else None
    from cryptography import x509

    certs = [x509.load_der_x509_certificate(der) for der in _chain_der(obj)]
    report.chain = [describe(c, now) for c in certs]
    if certs:
        leaf = certs[0]
        report.chain_ordered = all(_signed_by(certs[i], certs[i + 1])
                                   for i in range(len(certs) - 1))
        report.expired = leaf.not_valid_after_utc < now
        report.not_yet_valid = leaf.not_valid_before_utc > now
        report.expires_soon = not report.expired and (
            leaf.not_valid_after_utc - now).days < warn_days
        report.self_signed = report.chain[0].self_signed
        report.name_matches = name_matches(report.name_checked or address, cert_names(leaf))

    # Does the trust store (plus the user's CA file) verify the chain? Hostname checking
    # is ours (above), so the verdict here is about the chain alone.
    verify = ssl.create_default_context()
    verify.check_hostname = False
    if ca_file:
        try:
            verify.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            report.verify_error = f"the trusted CA file {ca_file} cannot be read: {exc}"
    try:
        await _handshake(address, port, verify, server_name, timeout)
        report.trusted = True
    except ssl.SSLCertVerificationError as exc:
        report.trusted = False
        report.verify_error = report.verify_error or exc.verify_message or str(exc)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        # The default context refuses old protocols: verification cannot be judged.
        report.verify_error = report.verify_error or f"not verifiable: {exc}"

    for label, version in PROTOCOLS:
        ctx = _only(version)
        if ctx is None:
            report.protocols[label] = "not testable here"
            continue
        try:
            await _handshake(address, port, ctx, server_name, timeout)
            report.protocols[label] = "accepted"
        except ssl.SSLError as exc:
            report.protocols[label] = ("not testable here" if "NO_PROTOCOLS_AVAILABLE"
                                       in str(exc) or "NO_CIPHERS" in str(exc) else "refused")
        except (OSError, TimeoutError):
            report.protocols[label] = "refused"

    for key, ciphers, why in WEAK_GROUPS:
        ctx = _only_below_13(ciphers)
        if ctx is None:
            report.weak_ciphers[key] = {"status": "not testable here", "cipher": None,
                                        "why": why}
            continue
        try:
            obj = await _handshake(address, port, ctx, server_name, timeout)
            got = obj.cipher()
            report.weak_ciphers[key] = {"status": "accepted", "why": why,
                                        "cipher": got[0] if got else None}
        except (OSError, ssl.SSLError, TimeoutError):
            report.weak_ciphers[key] = {"status": "refused", "cipher": None, "why": why}
    return report


def _only_below_13(ciphers: str) -> ssl.SSLContext | None:
    ctx = client_context()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
    except (ssl.SSLError, ValueError):
        return None
    return ctx
