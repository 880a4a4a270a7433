"""Settings of the bank's WeChat Official Account (spec/wechat-official-account.md §1)."""

from __future__ import annotations

import base64
import binascii
import re

from pydantic import BaseModel, Field, SecretStr, field_validator

_TOKEN_RE = re.compile(r"^[A-Za-z0-9]{3,32}$")
_AES_KEY_RE = re.compile(r"^[A-Za-z0-9]{43}$")
_APPID_RE = re.compile(r"^wx[0-9a-f]{16}$")
_ACCOUNT_ID_RE = re.compile(r"^gh_[0-9a-z]{12}$")


def decode_encoding_aes_key(value: str) -> bytes:
    """The 43-character EncodingAESKey is base64 of the 32-byte AES-256 key without its "=".

    Real keys are random, so their last character often carries non-zero spare bits (spec §6,
    "Base64 caution"): decode leniently, as WeChat does, rather than insisting on canonical base64.
    """
    if not _AES_KEY_RE.fullmatch(value):
        raise ValueError(f"must be 43 letters or digits, got {len(value)} characters")
    try:
        key = base64.b64decode(value + "=")
    except binascii.Error as exc:
        raise ValueError("is not base64") from exc
    if len(key) != 32:  # pragma: no cover - 43 base64 characters always give 32 bytes
        raise ValueError(f"decodes to {len(key)} bytes, not 32")
    return key


class WeChatSettings(BaseModel):
    """`TIANFU_WECHAT_*`; secrets stay optional here so development can start without them,
    and `TianfuSettings` refuses missing or placeholder ones in production."""

    token: SecretStr | None = Field(default=None, description="Token for the SHA-1 signatures")
    appid: str | None = Field(default=None, description="The account's AppID (wx…)")
    appsecret: SecretStr | None = Field(default=None, description="AppSecret for access tokens")
    encoding_aes_key: SecretStr | None = Field(
        default=None, description="43-character EncodingAESKey for compatible/safe mode"
    )
    account_id: str | None = Field(default=None, description="The original id, gh_…")

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TOKEN_RE.fullmatch(value.get_secret_value()):
            raise ValueError("must be 3 to 32 letters or digits")
        return value

    @field_validator("encoding_aes_key")
    @classmethod
    def _check_aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_encoding_aes_key(value.get_secret_value())
        return value

    @field_validator("appid")
    @classmethod
    def _check_appid(cls, value: str | None) -> str | None:
        if value is not None and not _APPID_RE.fullmatch(value):
            raise ValueError("must look like wx followed by 16 hex digits")
        return value

    @field_validator("account_id")
    @classmethod
    def _check_account_id(cls, value: str | None) -> str | None:
        if value is not None and not _ACCOUNT_ID_RE.fullmatch(value):
            raise ValueError("must look like gh_ followed by 12 lowercase letters or digits")
        return value

    @property
    def aes_key(self) -> bytes | None:
        if self.encoding_aes_key is None:
            return None
        return decode_encoding_aes_key(self.encoding_aes_key.get_secret_value())
