"""Configuration: environment variables prefixed `TIANFU_` (and a local `.env`), validated at start.

Each package keeps its own settings model (`lbs.config.WeChatSettings`, …); this module composes
them, so `TIANFU_WECHAT_TOKEN` is `settings.wechat.token`.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from lbs.config import WeChatSettings
from merchants.config import PortalSettings
from payments.alipay.config import AlipaySettings
from payments.config import PaymentSettings
from tenpay_adapter.config import TenpaySettings

DEFAULT_SQLITE_PATH = Path("var") / "tianfu.sqlite3"

# Values that say "someone forgot to configure this"; refused in production.
_PLACEHOLDER_MARKERS = ("change-me", "changeme", "placeholder", "dev-", "example", "xxxx", "todo")


class Environment(StrEnum):
    development = "development"
    production = "production"


class ConfigurationError(Exception):
    """Bad configuration; the message is one line naming the variable."""


def normalise_database_url(raw: str) -> str:
    """Accept the usual spellings of the two supported backends and pin their drivers."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ValueError(f"is not a database URL: {raw!r}") from exc
    backend = url.get_backend_name()
    if backend == "postgres":
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "postgresql":
        if url.get_driver_name() not in ("psycopg", "psycopg2") or url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        if url.get_driver_name() != "psycopg":
            raise ValueError("PostgreSQL is used through psycopg 3: write postgresql+psycopg://")
    elif backend == "sqlite":
        if url.get_driver_name() not in ("pysqlite", ""):
            raise ValueError(f"unsupported SQLite driver {url.get_driver_name()!r}")
        url = url.set(drivername="sqlite")
        if not url.database or url.database == ":memory:":
            raise ValueError("SQLite needs a file path (sqlite:///var/tianfu.sqlite3)")
    else:
        raise ValueError(
            f"unsupported backend {backend!r}: use sqlite:///path/to/file.sqlite3 (SpatiaLite) "
            "or postgresql+psycopg://user@host/db (PostGIS)"
        )
    return url.render_as_string(hide_password=False)


def _looks_like_placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(marker in lowered for marker in _PLACEHOLDER_MARKERS)


class TianfuSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIANFU_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
        validate_default=True,
    )

    env: Environment = Environment.development
    database_url: str = Field(default=f"sqlite:///{DEFAULT_SQLITE_PATH}")
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = Field(
        default=None, description="Signs H5 links and portal sessions; 32+ characters"
    )
    spatialite_library: str = "mod_spatialite"
    # How often each worker polls the store change log; new stores show up within about this.
    index_poll_interval_s: float = Field(default=0.5, gt=0, le=10)
    log_level: str = "info"
    wechat: WeChatSettings = Field(default_factory=WeChatSettings)
    payments: PaymentSettings = Field(default_factory=PaymentSettings)
    tenpay: TenpaySettings = Field(default_factory=TenpaySettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)
    alipay: AlipaySettings = Field(default_factory=AlipaySettings)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("public_base_url")
    @classmethod
    def _check_public_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> TianfuSettings:
        if self.env is not Environment.production:
            return self
        required: dict[str, SecretStr | str | None] = {
            "TIANFU_SECRET_KEY": self.secret_key,
            "TIANFU_WECHAT_TOKEN": self.wechat.token,
            "TIANFU_WECHAT_APPID": self.wechat.appid,
            "TIANFU_WECHAT_APPSECRET": self.wechat.appsecret,
            "TIANFU_WECHAT_ENCODING_AES_KEY": self.wechat.encoding_aes_key,
            "TIANFU_WECHAT_ACCOUNT_ID": self.wechat.account_id,
        }
        missing = [name for name, value in required.items() if value is None]
        placeholders = [
            name
            for name, value in required.items()
            if value is not None
            and _looks_like_placeholder(
                value.get_secret_value() if isinstance(value, SecretStr) else value
            )
        ]
        problems = []
        if missing:
            problems.append(f"{', '.join(missing)} required in production")
        if placeholders:
            problems.append(f"{', '.join(placeholders)} still a placeholder in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def database_backend(self) -> str:
        return make_url(self.database_url).get_backend_name()

    @property
    def sqlalchemy_url(self) -> URL:
        return make_url(self.database_url)


def _variable_name(location: tuple[Any, ...]) -> str:
    return "TIANFU_" + "_".join(str(part) for part in location).upper()


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the environment variable, never echoing a secret."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["loc"]:
            problems.append(f"{_variable_name(item['loc'])}: {message}")
        else:
            problems.append(message)  # model-level checks name their variable themselves
    return "; ".join(problems)


def load_settings(**overrides: Any) -> TianfuSettings:
    try:
        return TianfuSettings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(
            f"invalid configuration: {describe_validation_error(exc)}"
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> TianfuSettings:
    return load_settings()


def generate_development_env() -> str:
    """The contents of a fresh development `.env`: random secrets in the shapes WeChat uses."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    values = {
        "TIANFU_ENV": "development",
        "TIANFU_SECRET_KEY": secrets.token_urlsafe(48),
        "TIANFU_WECHAT_TOKEN": "".join(secrets.choice(alphabet) for _ in range(32)),
        "TIANFU_WECHAT_APPID": "wx" + secrets.token_hex(8),
        "TIANFU_WECHAT_APPSECRET": secrets.token_hex(16),
        "TIANFU_WECHAT_ENCODING_AES_KEY": "".join(secrets.choice(alphabet) for _ in range(43)),
        "TIANFU_WECHAT_ACCOUNT_ID": "gh_" + secrets.token_hex(6),
        # Development talks to `tianfu sim wechat`, never to WeChat itself.
        "TIANFU_WECHAT_API_BASE_URL": "http://127.0.0.1:8001",
        "TIANFU_WECHAT_OPEN_BASE_URL": "http://127.0.0.1:8001",
    }
    header = "# Development secrets generated by `tianfu dev-env`; never commit this file.\n"
    return header + "".join(f"{key}={value}\n" for key, value in values.items())
