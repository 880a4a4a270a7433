"""`tianfu sim alipay`'s throwaway application: the alipay.env it writes configures a Tianfu the
simulator accepts, and a restart with the same directory keeps the same application."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from payments.alipay.config import AlipaySettings
from payments.alipay.sim_dev import development_account
from tests.alipay.sim_support import (
    RawMerchant,
    alipay_keys,
    app_keys,
    read_answer,
    running_sim,
    trade_biz,
)
from tianfu.cli import app


def env_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value.strip('"').replace("\\n", "\n")
    return values


def test_the_written_env_configures_an_application_the_simulator_accepts(tmp_path: Path) -> None:
    account = development_account(
        tmp_path / "keys", alipay=AlipaySettings(), base_url="http://127.0.0.1:8003"
    )
    env = env_values(account.env_path)
    assert (account.env_path.stat().st_mode & 0o777) == 0o600
    assert env["TIANFU_ALIPAY_GATEWAY_URL"] == "http://127.0.0.1:8003/gateway.do"
    assert "BEGIN RSA PRIVATE KEY" in env["TIANFU_ALIPAY_APP_PRIVATE_KEY_PEM"]  # PKCS#1, §3.5
    settings = AlipaySettings(
        app_id=env["TIANFU_ALIPAY_APP_ID"],
        seller_id=env["TIANFU_ALIPAY_SELLER_ID"],
        app_private_key_pem=env["TIANFU_ALIPAY_APP_PRIVATE_KEY_PEM"],
        alipay_public_key_pem=env["TIANFU_ALIPAY_ALIPAY_PUBLIC_KEY_PEM"],
    )
    assert settings.app_private_key_pem is not None
    with running_sim(account.config) as sim:
        merchant = RawMerchant(
            sim.base_url,
            app_id=env["TIANFU_ALIPAY_APP_ID"],
            private_key_pem=settings.app_private_key_pem.get_secret_value(),
        )
        params = merchant.signed("alipay.trade.precreate", trade_biz("ORD1"))
        answer = read_answer(
            merchant.send(params),
            "alipay.trade.precreate",
            alipay_public_key_pem=env["TIANFU_ALIPAY_ALIPAY_PUBLIC_KEY_PEM"],
        )
        merchant.close()
    assert (answer.code, answer.verified) == ("10000", True)
    again = development_account(tmp_path / "keys", alipay=AlipaySettings(), base_url="http://x")
    assert again.config.app_id == account.config.app_id
    assert again.config.alipay_public_key_pem == account.config.alipay_public_key_pem


def test_values_in_the_settings_are_kept_but_the_alipay_key_is_the_simulators(
    tmp_path: Path,
) -> None:
    given = AlipaySettings(
        app_id="2021000000000777",
        seller_id="2088000000000777",
        app_private_key_pem=app_keys()["private_key_pkcs8_pem"],
        alipay_public_key_pem=alipay_keys()["public_key_pem"],  # a real Alipay key, say
    )
    account = development_account(tmp_path, alipay=given, base_url="http://127.0.0.1:8003")
    config = account.config
    assert (config.app_id, config.seller_id) == (given.app_id, given.seller_id)
    assert account.from_settings == {"app_id", "seller_id", "app_private_key_pem"}
    assert config.app_public_key_pem.strip() == app_keys()["public_key_pem"].strip()
    env = env_values(account.env_path)
    assert env["TIANFU_ALIPAY_ALIPAY_PUBLIC_KEY_PEM"] == config.alipay_public_key_pem.strip()
    assert env["TIANFU_ALIPAY_ALIPAY_PUBLIC_KEY_PEM"] != alipay_keys()["public_key_pem"].strip()


def test_the_command_is_registered() -> None:
    result = CliRunner().invoke(app, ["sim", "alipay", "--help"])
    assert result.exit_code == 0
    assert "--keys-dir" in result.output
