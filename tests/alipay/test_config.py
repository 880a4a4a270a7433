"""AlipaySettings (`TIANFU_ALIPAY_*`) and the channel factory."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from payments.alipay.client import AlipayChannel, build_alipay_channels
from payments.alipay.config import AlipaySettings
from tests.alipay.channel_support import APP_ID, alipay_keys, alipay_settings, app_keys
from tianfu.settings import load_settings


def _bare(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


def test_alipay_is_off_without_an_app_id() -> None:
    settings = AlipaySettings()
    assert settings.app_id is None
    assert settings.gateway_url == "https://openapi.alipay.com/gateway.do"
    assert build_alipay_channels(settings) == []


@pytest.mark.parametrize("form", ["private_key_pkcs8_pem", "private_key_pkcs1_pem"])
def test_one_channel_per_configured_app_with_either_key_form(form: str) -> None:
    settings = alipay_settings(
        "http://127.0.0.1:9/gateway.do",
        app_private_key_pem=app_keys()[form],
        alipay_public_key_pem=_bare(alipay_keys()["public_key_pem"]),
    )
    [channel] = build_alipay_channels(settings)
    assert isinstance(channel, AlipayChannel)
    assert (channel.name, channel.account) == ("alipay", APP_ID)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"app_private_key_pem": None}, "needs app_private_key_pem"),
        ({"alipay_public_key_pem": None}, "needs alipay_public_key_pem"),
        ({"app_private_key_pem": "not a key"}, "app_private_key_pem is not"),
        ({"alipay_public_key_pem": "not a key"}, "alipay_public_key_pem is not"),
        ({"app_id": "wx2421b1c4370ec43b"}, "16 digits"),
        ({"seller_id": "1900009191"}, "2088"),
        ({"gateway_url": "openapi.alipay.com/gateway.do"}, "http"),
        ({"timeout_s": 0}, "greater than 0"),
    ],
)
def test_bad_settings_are_refused_at_start(overrides: dict[str, Any], problem: str) -> None:
    values = {"gateway_url": "http://127.0.0.1:9/gateway.do"} | overrides
    with pytest.raises(ValidationError, match=problem):
        alipay_settings(**values)


def test_a_refusal_never_echoes_the_private_key() -> None:
    secret_looking = "-----BEGIN PRIVATE KEY-----\nTOPSECRETBODY\n-----END PRIVATE KEY-----"
    with pytest.raises(ValidationError) as refused:
        alipay_settings("http://127.0.0.1:9/gateway.do", app_private_key_pem=secret_looking)
    assert "TOPSECRETBODY" not in str(refused.value)


def test_tianfu_settings_read_the_alipay_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIANFU_ALIPAY_APP_ID", APP_ID)
    monkeypatch.setenv("TIANFU_ALIPAY_APP_PRIVATE_KEY_PEM", app_keys()["private_key_pkcs1_pem"])
    monkeypatch.setenv("TIANFU_ALIPAY_ALIPAY_PUBLIC_KEY_PEM", alipay_keys()["public_key_pem"])
    monkeypatch.setenv("TIANFU_ALIPAY_TIMEOUT_S", "3.5")
    settings = load_settings(_env_file=None).alipay
    assert (settings.app_id, settings.timeout_s) == (APP_ID, 3.5)
    assert settings.app_private_key_pem is not None
    assert "RSA PRIVATE KEY" in settings.app_private_key_pem.get_secret_value()
    assert "RSA PRIVATE KEY" not in repr(settings)
