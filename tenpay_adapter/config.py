"""WeChat Pay merchant accounts (`TIANFU_TENPAY_*`): ids, keys and where the gateway lives.

Keys are PEM text in settings (or a `.env` kept out of the repository), never files in the repo.
The top-level fields are the default account; merchants still on API v2, or with a merchant
number of their own, are listed in `TIANFU_TENPAY_ACCOUNTS` (JSON) and chosen per merchant.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

ApiVersion = Literal["v3", "v2"]
_MCHID_RE = re.compile(r"^[0-9]{8,10}$")


class TenpayAccount(BaseModel):
    """One merchant number at WeChat Pay and how we talk to it."""

    mchid: str = Field(description="The merchant number (商户号)")
    appid: str = Field(description="The AppID payments are made under (the Official Account's)")
    api_version: ApiVersion = "v3"
    # v2: the 32-character API key (MD5/HMAC signatures, refund notify decryption).
    api_key: SecretStr | None = None
    sign_type: Literal["MD5", "HMAC-SHA256"] = "HMAC-SHA256"
    # v2 refunds need mutual TLS with the merchant API certificate (apiclient_cert.pem / _key.pem).
    client_cert_path: str | None = None
    client_key_path: str | None = None
    # v3: the APIv3 key (notify decryption), our API private key and its certificate's serial.
    apiv3_key: SecretStr | None = None
    merchant_private_key_pem: SecretStr | None = None
    merchant_serial_no: str | None = None
    # v3: WeChat Pay's platform certificate (or its public key with `platform_public_key_id`,
    # the newer "WeChat Pay public key" mode) to verify responses and notifies.
    platform_certificate_pem: str | None = None
    platform_public_key_pem: str | None = None
    platform_public_key_id: str | None = None
    base_url: str = "https://api.mch.weixin.qq.com"
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    # v3 notifies older or newer than this are refused (wechatpayv3 does not check it).
    notify_window_s: int = Field(default=300, ge=1)

    @field_validator("mchid")
    @classmethod
    def _check_mchid(cls, value: str) -> str:
        if not _MCHID_RE.fullmatch(value):
            raise ValueError("must be 8 to 10 digits")
        return value

    @field_validator("api_key", "apiv3_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) != 32:
            raise ValueError("must be 32 characters")
        return value

    @model_validator(mode="after")
    def _keys_for_version(self) -> TenpayAccount:
        if self.api_version == "v2" and self.api_key is None:
            raise ValueError(f"account {self.mchid}: API v2 needs api_key")
        if self.api_version == "v3":
            missing = [
                name
                for name in ("apiv3_key", "merchant_private_key_pem", "merchant_serial_no")
                if getattr(self, name) is None
            ]
            if self.platform_certificate_pem is None and self.platform_public_key_pem is None:
                missing.append("platform_certificate_pem or platform_public_key_pem")
            if missing:
                raise ValueError(f"account {self.mchid}: API v3 needs {', '.join(missing)}")
        return self


class TenpaySettings(BaseModel):
    """`TIANFU_TENPAY_*`. Payments through WeChat Pay are off until `mchid` is set."""

    mchid: str | None = None
    appid: str | None = Field(default=None, description="Defaults to TIANFU_WECHAT_APPID")
    api_version: ApiVersion = "v3"
    api_key: SecretStr | None = None
    sign_type: Literal["MD5", "HMAC-SHA256"] = "HMAC-SHA256"
    client_cert_path: str | None = None
    client_key_path: str | None = None
    apiv3_key: SecretStr | None = None
    merchant_private_key_pem: SecretStr | None = None
    merchant_serial_no: str | None = None
    platform_certificate_pem: str | None = None
    platform_public_key_pem: str | None = None
    platform_public_key_id: str | None = None
    base_url: str = "https://api.mch.weixin.qq.com"
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    notify_window_s: int = Field(default=300, ge=1)
    accounts: list[TenpayAccount] = Field(default_factory=list)

    def all_accounts(self, *, default_appid: str | None) -> list[TenpayAccount]:
        """The default account (when configured) followed by the extra ones."""
        found: list[TenpayAccount] = []
        if self.mchid is not None:
            appid = self.appid or default_appid
            if appid is None:
                raise ValueError("TIANFU_TENPAY_APPID (or TIANFU_WECHAT_APPID) is required")
            found.append(
                TenpayAccount(
                    mchid=self.mchid,
                    appid=appid,
                    api_version=self.api_version,
                    api_key=self.api_key,
                    sign_type=self.sign_type,
                    client_cert_path=self.client_cert_path,
                    client_key_path=self.client_key_path,
                    apiv3_key=self.apiv3_key,
                    merchant_private_key_pem=self.merchant_private_key_pem,
                    merchant_serial_no=self.merchant_serial_no,
                    platform_certificate_pem=self.platform_certificate_pem,
                    platform_public_key_pem=self.platform_public_key_pem,
                    platform_public_key_id=self.platform_public_key_id,
                    base_url=self.base_url,
                    timeout_s=self.timeout_s,
                    notify_window_s=self.notify_window_s,
                )
            )
        found.extend(self.accounts)
        seen: set[str] = set()
        for account in found:
            if account.mchid in seen:
                raise ValueError(f"merchant number {account.mchid} is configured twice")
            seen.add(account.mchid)
        return found
