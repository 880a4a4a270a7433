"""The simulator's application for `tianfu sim alipay`: whatever the settings hold
(TIANFU_ALIPAY_APP_ID, _SELLER_ID, _APP_PRIVATE_KEY_PEM) and throwaway values for the rest, kept
in a directory so a restart with the same directory needs no reconfiguration of Tianfu.

The Alipay key pair is always the simulator's own (only Alipay holds the real one), so Tianfu is
given the simulator's Alipay public key: `alipay.env` holds every TIANFU_ALIPAY_* line it needs.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from payments.alipay.config import AlipaySettings
from payments.alipay.signing import load_private_key, private_key_pkcs1_pem, public_key_pem
from payments.alipay.sim_config import AlipaySimConfig

_ACCOUNT_FILE = "account.json"


@dataclass(frozen=True)
class DevelopmentAccount:
    config: AlipaySimConfig
    directory: Path
    env_path: Path  # TIANFU_ALIPAY_* lines that point Tianfu at the simulator
    from_settings: frozenset[str]  # which values the settings supplied

    def path(self, name: str) -> Path:
        return self.directory / name


def _write_private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def _new_key_pair(directory: Path, stem: str) -> None:
    """RSA 2048, the private half as PKCS#1 (alipay-sdk-python reads nothing else, spec §3.5)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(directory / f"{stem}_private_key.pem", private_key_pkcs1_pem(key))
    (directory / f"{stem}_public_key.pem").write_text(
        public_key_pem(key.public_key()), encoding="utf-8"
    )


def _ensure_throwaway(directory: Path) -> dict[str, str]:
    """Made once per directory; later starts reuse them."""
    account_path = directory / _ACCOUNT_FILE
    if account_path.exists():
        account: dict[str, str] = json.loads(account_path.read_text(encoding="utf-8"))
        return account
    _new_key_pair(directory, "app")
    _new_key_pair(directory, "alipay")
    account = {
        "app_id": f"9021{secrets.randbelow(10**12):012d}",
        "seller_id": f"2088{secrets.randbelow(10**12):012d}",
    }
    _write_private(account_path, json.dumps(account, indent=2))
    return account


def _env_value(pem: str) -> str:
    # python-dotenv turns \n back into line breaks inside double quotes.
    return '"' + pem.strip().replace("\n", "\\n") + '"'


def development_account(
    directory: Path, *, alipay: AlipaySettings, base_url: str, retry_scale: float = 1.0
) -> DevelopmentAccount:
    directory.mkdir(parents=True, exist_ok=True)
    throwaway = _ensure_throwaway(directory)
    given: set[str] = set()

    def pick(name: str, configured: str | None, fallback: str) -> str:
        if configured:
            given.add(name)
            return configured
        return fallback

    configured_key = alipay.app_private_key_pem
    app_key = pick(
        "app_private_key_pem",
        configured_key.get_secret_value() if configured_key is not None else None,
        (directory / "app_private_key.pem").read_text(encoding="utf-8"),
    )
    config = AlipaySimConfig(
        app_id=pick("app_id", alipay.app_id, throwaway["app_id"]),
        seller_id=pick("seller_id", alipay.seller_id, throwaway["seller_id"]),
        app_public_key_pem=public_key_pem(load_private_key(app_key).public_key()),
        alipay_private_key_pem=(directory / "alipay_private_key.pem").read_text(encoding="utf-8"),
        retry_scale=retry_scale,
    )
    lines = {
        "TIANFU_ALIPAY_APP_ID": config.app_id,
        "TIANFU_ALIPAY_SELLER_ID": config.seller_id,
        "TIANFU_ALIPAY_APP_PRIVATE_KEY_PEM": _env_value(app_key),
        "TIANFU_ALIPAY_ALIPAY_PUBLIC_KEY_PEM": _env_value(config.alipay_public_key_pem),
        "TIANFU_ALIPAY_GATEWAY_URL": f"{base_url}/gateway.do",
    }
    env_path = directory / "alipay.env"
    header = "# Keys of `tianfu sim alipay` (throwaway where unset); never commit this file.\n"
    _write_private(env_path, header + "".join(f"{k}={v}\n" for k, v in lines.items()))
    return DevelopmentAccount(config, directory, env_path, frozenset(given))
