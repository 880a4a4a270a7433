"""Which WeChat Pay account (and so which API version) takes a merchant's payments: the default
account, unless `merchant_pay_accounts` names another configured one."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from payments.errors import ChannelNotConfiguredError
from payments.flows import Channels
from payments.models import MerchantPayAccount
from tenpay_adapter.client import build_tenpay_channels
from tenpay_adapter.config import TenpayAccount, TenpaySettings
from tests.builders import make_merchant
from tests.tenpay.sim_support import API_KEY, APIV3_KEY, APPID, MCHID, merchant_keys, platform_keys

LEGACY_MCHID = "1900000109"


def _settings() -> TenpaySettings:
    return TenpaySettings(
        mchid=MCHID,
        api_version="v3",
        apiv3_key=APIV3_KEY,
        merchant_private_key_pem=merchant_keys().private_key_pem,
        merchant_serial_no=merchant_keys().serial_no,
        platform_certificate_pem=platform_keys().certificate_pem,
        accounts=[
            TenpayAccount(mchid=LEGACY_MCHID, appid=APPID, api_version="v2", api_key=API_KEY)
        ],
    )


def test_each_merchant_pays_through_its_own_account(db_session: Session) -> None:
    channels = Channels(build_tenpay_channels(_settings(), default_appid=APPID))
    modern, legacy = make_merchant(db_session), make_merchant(db_session, name="老字号")
    db_session.add(
        MerchantPayAccount(merchant_id=legacy.id, channel="tenpay", account=LEGACY_MCHID)
    )
    db_session.flush()
    chosen = channels.for_merchant(db_session, modern.id, "tenpay")
    assert (chosen.name, chosen.account) == ("tenpay_v3", MCHID)
    chosen = channels.for_merchant(db_session, legacy.id, "tenpay")
    assert (chosen.name, chosen.account) == ("tenpay_v2", LEGACY_MCHID)
    with pytest.raises(ChannelNotConfiguredError):
        channels.for_merchant(db_session, modern.id, "alipay")


def test_an_account_named_but_not_configured_is_refused(db_session: Session) -> None:
    channels = Channels(build_tenpay_channels(_settings(), default_appid=APPID))
    merchant = make_merchant(db_session)
    db_session.add(
        MerchantPayAccount(merchant_id=merchant.id, channel="tenpay", account="1234567890")
    )
    db_session.flush()
    with pytest.raises(ChannelNotConfiguredError):
        channels.for_merchant(db_session, merchant.id, "tenpay")


def test_an_account_without_its_keys_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="API v3 needs apiv3_key"):
        TenpayAccount(mchid=MCHID, appid=APPID, api_version="v3")
    with pytest.raises(ValueError, match="API v2 needs api_key"):
        TenpayAccount(mchid=MCHID, appid=APPID, api_version="v2")
