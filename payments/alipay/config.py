"""The Alipay application (`TIANFU_ALIPAY_*`): ids, keys and where the gateway lives.

Keys are PEM text (or the bare base64 body the Alipay console shows) in settings or a `.env` kept
out of the repository, never files in the repo. Payments through Alipay are off until `app_id` is
set; once it is, both keys are required and must load, so a bad key fails at start, not at the
first payment.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from payments.alipay.signing import load_private_key, load_public_key

_APP_ID_RE = re.compile(r"^[0-9]{16}$")
_PID_RE = re.compile(r"^2088[0-9]{12}$")


class AlipaySettings(BaseModel):
    """`TIANFU_ALIPAY_*`."""

    app_id: str | None = Field(default=None, description="The application's APPID (16 digits)")
    # The application private key: PKCS#1 or PKCS#8 (the SDK needs PKCS#1; we convert).
    app_private_key_pem: SecretStr | None = None
    # Alipay's public key (not the application's): verifies answers and notifies (spec §6).
    alipay_public_key_pem: str | None = None
    # The merchant's Alipay PID (2088…); notifies for another seller are refused when set.
    seller_id: str | None = None
    gateway_url: str = "https://openapi.alipay.com/gateway.do"
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    # Page (wap) payments: where the payer's browser returns, unless the request names one.
    return_url: str | None = None

    @field_validator("app_id")
    @classmethod
    def _check_app_id(cls, value: str | None) -> str | None:
        if value is not None and not _APP_ID_RE.fullmatch(value):
            raise ValueError("must be 16 digits")
        return value

    @field_validator("seller_id")
    @classmethod
    def _check_seller_id(cls, value: str | None) -> str | None:
        if value is not None and not _PID_RE.fullmatch(value):
            raise ValueError("must be a 16-digit PID starting 2088")
        return value

    @field_validator("gateway_url", "return_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _keys_when_enabled(self) -> AlipaySettings:
        if self.app_id is None:
            return self
        missing = [
            name
            for name in ("app_private_key_pem", "alipay_public_key_pem")
            if getattr(self, name) is None
        ]
        if missing:
            raise ValueError(f"Alipay app {self.app_id} needs {', '.join(missing)}")
        private_pem, public_pem = self.app_private_key_pem, self.alipay_public_key_pem
        # The messages name the setting, never the key text.
        try:
            load_private_key(private_pem.get_secret_value() if private_pem else "")
        except ValueError:
            raise ValueError("app_private_key_pem is not an RSA private key") from None
        try:
            load_public_key(public_pem or "")
        except ValueError:
            raise ValueError("alipay_public_key_pem is not an RSA public key") from None
        return self
