"""Google-style ID tokens signed here, and their certificates served over local HTTP, so
push authentication is tested with real signatures (Google's own servers are unreachable)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import google.auth.crypt
import google.auth.jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


class Issuer:
    """Signs ID tokens like Google does and publishes the certificate that checks them."""

    KEY_ID = "test-key"

    def __init__(self, audience: str, account: str) -> None:
        self.audience = audience
        self.account = account
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer")])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.fetches = 0

    def certs_document(self) -> bytes:
        pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        return json.dumps({self.KEY_ID: pem}).encode()

    def token(self, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": "https://accounts.google.com",
            "aud": self.audience,
            "email": self.account,
            "email_verified": True,
            "sub": "1234567890",
            "iat": now,
            "exp": now + 3600,
        }
        payload.update(claims)
        private = (key or self.key).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        signer = google.auth.crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
            private, key_id=self.KEY_ID
        )
        token: bytes = google.auth.jwt.encode(signer, payload)  # type: ignore[no-untyped-call]
        return token.decode()


@contextlib.contextmanager
def serving_certs(issuer: Issuer) -> Iterator[str]:
    """Serves the issuer's certificates like https://www.googleapis.com/oauth2/v1/certs."""

    class Certs(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.fetches += 1
            body = issuer.certs_document()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Certs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
