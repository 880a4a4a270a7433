from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tianfu.settings import (
    ConfigurationError,
    Environment,
    TianfuSettings,
    generate_development_env,
    load_settings,
)

OFFICIAL_SAMPLE_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # spec §6 vector
PRODUCTION_ENV = {
    "TIANFU_ENV": "production",
    "TIANFU_SECRET_KEY": "k" * 20 + "Q9vX2mL7pR4tW8zB3nC6",
    "TIANFU_WECHAT_TOKEN": "spamtest",
    "TIANFU_WECHAT_APPID": "wx2c2769f8efd9abc2",
    "TIANFU_WECHAT_APPSECRET": "3f1a9c0e5b7d2f4a6c8e0b1d3f5a7c9e",
    "TIANFU_WECHAT_ENCODING_AES_KEY": OFFICIAL_SAMPLE_AES_KEY,
    "TIANFU_WECHAT_ACCOUNT_ID": "gh_10f6c3c3ac5a",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TIANFU_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def _set(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_defaults_are_development_on_a_sqlite_file_under_var() -> None:
    settings = load_settings()
    assert settings.env is Environment.development
    assert settings.database_url == "sqlite:///var/tianfu.sqlite3"
    assert settings.database_backend == "sqlite"
    assert settings.wechat.token is None


def test_environment_variables_fill_nested_wechat_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _set(monkeypatch, PRODUCTION_ENV)
    settings = load_settings()
    assert settings.env is Environment.production
    assert settings.wechat.appid == "wx2c2769f8efd9abc2"
    assert settings.wechat.account_id == "gh_10f6c3c3ac5a"
    assert settings.wechat.aes_key is not None
    assert len(settings.wechat.aes_key) == 32


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "TIANFU_PUBLIC_BASE_URL=https://offers.example-bank.cn/\nTIANFU_WECHAT_TOKEN=abc123\n"
    )
    settings = load_settings()
    assert settings.public_base_url == "https://offers.example-bank.cn"
    assert settings.wechat.token is not None
    assert settings.wechat.token.get_secret_value() == "abc123"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        (
            "postgresql://postgres@127.0.0.1/tianfu",
            "postgresql+psycopg://postgres@127.0.0.1/tianfu",
        ),
        ("postgres://u:p@db/tianfu", "postgresql+psycopg://u:p@db/tianfu"),
        ("postgresql+psycopg://u@db/t", "postgresql+psycopg://u@db/t"),
        ("sqlite:///var/x.sqlite3", "sqlite:///var/x.sqlite3"),
    ],
)
def test_database_urls_are_normalised_to_the_supported_drivers(raw: str, normalised: str) -> None:
    assert load_settings(database_url=raw).database_url == normalised


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TIANFU_DATABASE_URL", "mysql://root@localhost/tianfu", "unsupported backend 'mysql'"),
        ("TIANFU_DATABASE_URL", "sqlite://", "SQLite needs a file path"),
        ("TIANFU_DATABASE_URL", "not a url", "is not a database URL"),
        ("TIANFU_WECHAT_ENCODING_AES_KEY", "abcdefghijklmnopqrstuvwxyz", "must be 43"),
        ("TIANFU_WECHAT_ENCODING_AES_KEY", OFFICIAL_SAMPLE_AES_KEY[:-1] + "+", "must be 43"),
        ("TIANFU_WECHAT_TOKEN", "a b", "3 to 32 letters or digits"),
        ("TIANFU_WECHAT_APPID", "app-123", "wx followed by 16 hex digits"),
        ("TIANFU_WECHAT_ACCOUNT_ID", "bank", "gh_ followed by"),
        ("TIANFU_PUBLIC_BASE_URL", "offers.bank.cn", "http:// or https://"),
        ("TIANFU_SECRET_KEY", "short", "at least 32 characters"),
        ("TIANFU_ENV", "staging", "TIANFU_ENV"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert expected in message
    assert "\n" not in message


def test_non_canonical_base64_aes_key_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    # spec §6: real keys often have non-zero spare bits in the last character.
    monkeypatch.setenv(
        "TIANFU_WECHAT_ENCODING_AES_KEY", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
    )
    assert load_settings().wechat.aes_key is not None


def test_production_refuses_a_missing_token(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, PRODUCTION_ENV)
    monkeypatch.delenv("TIANFU_WECHAT_TOKEN")
    with pytest.raises(ConfigurationError, match="TIANFU_WECHAT_TOKEN required in production"):
        load_settings()


def test_production_refuses_placeholder_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, PRODUCTION_ENV | {"TIANFU_WECHAT_APPSECRET": "change-me"})
    with pytest.raises(ConfigurationError, match="TIANFU_WECHAT_APPSECRET still a placeholder"):
        load_settings()


def test_production_with_every_secret_set_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, PRODUCTION_ENV)
    assert load_settings().env is Environment.production


def test_development_tolerates_missing_secrets() -> None:
    assert load_settings(env="development").secret_key is None


def test_secrets_never_appear_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, PRODUCTION_ENV)
    settings = load_settings()
    shown = repr(settings) + str(settings.model_dump())
    for name in ("TIANFU_WECHAT_APPSECRET", "TIANFU_SECRET_KEY", "TIANFU_WECHAT_TOKEN"):
        assert PRODUCTION_ENV[name] not in shown
    monkeypatch.setenv("TIANFU_WECHAT_ENCODING_AES_KEY", "Secret0Key0Value")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "Secret0Key0Value" not in str(caught.value)


def test_generated_development_env_is_valid_and_fresh(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = generate_development_env(), generate_development_env()
    assert first != second
    (tmp_path / ".env").write_text(first)
    settings = TianfuSettings()
    assert settings.wechat.aes_key is not None
    assert settings.secret_key is not None
    # Good enough for production validation too: nothing in it looks like a placeholder.
    monkeypatch.setenv("TIANFU_ENV", "production")
    assert load_settings().env is Environment.production


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"TIANFU_DATABASE_URL": "mysql://root@localhost/tianfu"}, "TIANFU_DATABASE_URL"),
        ({"TIANFU_WECHAT_ENCODING_AES_KEY": "tooshort"}, "TIANFU_WECHAT_ENCODING_AES_KEY"),
        (
            {k: v for k, v in PRODUCTION_ENV.items() if k != "TIANFU_WECHAT_TOKEN"},
            "TIANFU_WECHAT_TOKEN",
        ),
    ],
    ids=["unknown-backend", "aes-key-length", "production-missing-token"],
)
def test_cli_refuses_bad_configuration_in_one_line(
    tmp_path: Path, environment: dict[str, str], named: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIANFU_")} | environment
    result = subprocess.run(
        [sys.executable, "-m", "tianfu", "serve", "--port", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr
