"""The simulator's account for `tianfu sim tenpay`: whatever the settings hold (TIANFU_TENPAY_*),
and throwaway values for the rest, kept in a directory so a restart with the same directory
needs no reconfiguration of Tianfu.

The platform key pair is always the simulator's own: only WeChat holds the real one, so Tianfu
must be given the simulator's platform certificate (written to `platform_cert.pem`).
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from tenpay_adapter.config import TenpaySettings
from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_keys import generate_key_pair
from tenpay_adapter.v3_signing import certificate_serial, load_private_key

_KEY_ALPHABET = string.ascii_letters + string.digits
_ACCOUNT_FILE = "account.json"


@dataclass(frozen=True)
class DevelopmentAccount:
    config: TenpaySimConfig
    directory: Path
    env_path: Path  # TIANFU_TENPAY_* lines that point Tianfu at the simulator
    from_settings: frozenset[str]  # which values the settings supplied

    def path(self, name: str) -> Path:
        return self.directory / name


def _random_key() -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))


def _write_private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def _ensure_throwaway(directory: Path) -> dict[str, str]:
    """Made once per directory; later starts reuse them."""
    account_path = directory / _ACCOUNT_FILE
    if account_path.exists():
        account: dict[str, str] = json.loads(account_path.read_text(encoding="utf-8"))
        return account
    merchant = generate_key_pair("Tianfu development merchant")
    platform = generate_key_pair("Tenpay simulator platform")
    _write_private(directory / "merchant_key.pem", merchant.private_key_pem)
    (directory / "merchant_public_key.pem").write_text(merchant.public_key_pem, encoding="utf-8")
    (directory / "merchant_cert.pem").write_text(merchant.certificate_pem, encoding="utf-8")
    _write_private(directory / "platform_key.pem", platform.private_key_pem)
    (directory / "platform_cert.pem").write_text(platform.certificate_pem, encoding="utf-8")
    account = {
        "mchid": f"19{secrets.randbelow(10**8):08d}",
        "api_key": _random_key(),
        "apiv3_key": _random_key(),
    }
    _write_private(account_path, json.dumps(account, indent=2))
    return account


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _public_key_pem(private_key_pem: str) -> str:
    public = load_private_key(private_key_pem).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


def _env_value(pem: str) -> str:
    # python-dotenv turns \n back into line breaks inside double quotes.
    return '"' + pem.strip().replace("\n", "\\n") + '"'


def development_account(
    directory: Path,
    *,
    tenpay: TenpaySettings,
    default_appid: str | None,
    base_url: str,
    retry_scale: float = 1.0,
) -> DevelopmentAccount:
    directory.mkdir(parents=True, exist_ok=True)
    throwaway = _ensure_throwaway(directory)
    given: set[str] = set()

    def read(name: str) -> str:
        return (directory / name).read_text(encoding="utf-8")

    def pick(name: str, configured: str | None, fallback: str) -> str:
        if configured:
            given.add(name)
            return configured
        return fallback

    merchant_key = pick(
        "merchant_private_key_pem",
        _secret(tenpay.merchant_private_key_pem),
        read("merchant_key.pem"),
    )
    own_key = "merchant_private_key_pem" in given
    serial = tenpay.merchant_serial_no if own_key else None
    platform_cert = read("platform_cert.pem")
    config = TenpaySimConfig(
        appid=pick("appid", tenpay.appid or default_appid, "wx" + "0" * 16),
        mchid=pick("mchid", tenpay.mchid, throwaway["mchid"]),
        api_key=pick("api_key", _secret(tenpay.api_key), throwaway["api_key"]),
        apiv3_key=pick("apiv3_key", _secret(tenpay.apiv3_key), throwaway["apiv3_key"]),
        merchant_public_key_pem=_public_key_pem(merchant_key),
        merchant_serial_no=serial or certificate_serial(read("merchant_cert.pem")),
        platform_private_key_pem=read("platform_key.pem"),
        platform_certificate_pem=platform_cert,
        retry_scale=retry_scale,
    )
    lines = {
        "TIANFU_TENPAY_MCHID": config.mchid,
        "TIANFU_TENPAY_APPID": config.appid,
        "TIANFU_TENPAY_API_KEY": config.api_key,
        "TIANFU_TENPAY_APIV3_KEY": config.apiv3_key,
        "TIANFU_TENPAY_MERCHANT_SERIAL_NO": config.merchant_serial_no,
        "TIANFU_TENPAY_MERCHANT_PRIVATE_KEY_PEM": _env_value(merchant_key),
        "TIANFU_TENPAY_PLATFORM_CERTIFICATE_PEM": _env_value(platform_cert),
        "TIANFU_TENPAY_BASE_URL": base_url,
        # Outside WeChat, the checkout page sends the payer to this simulator's cashier.
        "TIANFU_PAYMENTS_SANDBOX_CASHIER_URL": base_url,
    }
    env_path = directory / "tenpay.env"
    header = "# Keys of `tianfu sim tenpay` (throwaway where unset); never commit this file.\n"
    _write_private(env_path, header + "".join(f"{k}={v}\n" for k, v in lines.items()))
    return DevelopmentAccount(config, directory, env_path, frozenset(given))
