"""The shared client TLS context: made once, and it verifies as httpx's default does."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plexichat_desktop.plugins.tls import shared_tls_context


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_one_context_that_refuses_a_certificate_nobody_signed(tmp_path: Path) -> None:
    context = shared_tls_context()
    assert shared_tls_context() is context  # made once: the CA bundle is read once
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname

    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(*self_signed(tmp_path))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        conn, _ = listener.accept()
        with conn, pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
            server_side.wrap_socket(conn, server_side=True)  # the client refuses it

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        with httpx.Client(verify=context, timeout=5, trust_env=False) as client, \
                pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"https://localhost:{port}/")
    finally:
        thread.join(5)
        listener.close()


def test_a_client_that_ignores_the_environment_gets_a_context_that_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: one context made with httpx's default trust_env=True read SSL_CERT_FILE
    for clients made with trust_env=False too (they had trusted certifi's bundle only)."""
    cert, _key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    shared_tls_context.cache_clear()
    try:
        def trusted(context: ssl.SSLContext) -> bool:
            return any(dict(part[0] for part in ca["subject"]).get("commonName") == "localhost"
                       for ca in context.get_ca_certs())

        assert trusted(shared_tls_context())
        assert not trusted(shared_tls_context(trust_env=False))
        assert shared_tls_context(trust_env=False) is shared_tls_context(trust_env=False)
    finally:
        shared_tls_context.cache_clear()  # the next one reads the real environment
