"""Throwaway RSA key pairs and self-signed certificates for the simulator: the merchant's API
certificate and the platform certificate, made on this machine for development and tests.
Never real WeChat Pay certificates, never committed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tenpay_adapter.v3_signing import certificate_serial


@dataclass(frozen=True)
class KeyPair:
    private_key_pem: str  # PKCS#8, as apiclient_key.pem
    public_key_pem: str
    certificate_pem: str

    @property
    def serial_no(self) -> str:
        return certificate_serial(self.certificate_pem)


def generate_key_pair(common_name: str, *, valid_days: int = 365) -> KeyPair:
    """RSA 2048 (what v3 uses) and a self-signed certificate; takes a good fraction of a
    second, so tests make each pair once per session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
        public_key_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii"),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )
