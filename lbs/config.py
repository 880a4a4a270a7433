"""Settings of the bank's WeChat Official Account (spec/wechat-official-account.md §1)."""

from __future__ import annotations

import base64
import binascii
import re

from pydantic import BaseModel, Field, SecretStr, field_validator

from lbs.coords import CoordSystem

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
    # Where the WeChat API lives: the real hosts in production, the simulator in development.
    api_base_url: str = Field(default="https://api.weixin.qq.com", description="WeChat API")
    open_base_url: str = Field(
        default="https://open.weixin.qq.com", description="Where OAuth2 authorize pages live"
    )
    api_timeout_s: float = Field(default=3.0, gt=0, le=30)
    # WeChat does not bound timestamps; a captured plaintext-mode request stays valid without it
    # (spec §9.1), so requests older or newer than this are refused.
    timestamp_window_s: int = Field(default=300, ge=1)
    # Refuse plaintext pushes: in plaintext mode the signature does not cover the body (spec §9.1).
    # Turn on once the console is in safe mode.
    encryption_required: bool = False
    # The reply must be on its way before WeChat's 5 s; past this, reply "success" and send the
    # answer as a customer-service message instead.
    reply_budget_s: float = Field(default=4.0, gt=0, le=4.8)
    # A last location older than this is not used for "附近" and friends.
    location_fresh_s: int = Field(default=1800, ge=1)
    # The LOCATION event's coordinate system is undocumented (spec §7): calibrate, then set it.
    location_event_coord: CoordSystem = CoordSystem.GCJ02
    nearby_radius_m: int = Field(default=3000, ge=100, le=50_000)
    # Dedup keys must outlive WeChat's retries (about 15 s); a day also serves for support.
    dedup_retention_s: int = Field(default=86_400, ge=60)
    h5_link_ttl_s: int = Field(default=86_400, ge=60, description="Lifetime of H5 links in replies")
    h5_session_idle_s: int = Field(default=600, ge=30, description="H5 session idle timeout")

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

    @field_validator("api_base_url", "open_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def aes_key(self) -> bytes | None:
        if self.encoding_aes_key is None:
            return None
        return decode_encoding_aes_key(self.encoding_aes_key.get_secret_value())
