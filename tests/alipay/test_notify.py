"""AlipayChannel.parse_notify on the `notify_rsa2` vector and on notifies signed here with the
vectors' Alipay key: how each trade_status (and a refund riding on it) becomes a notice
(spec §3.2, §3.3)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from payments.alipay.client import AlipayChannel
from payments.alipay.signing import load_private_key, notify_sign_content, rsa2_sign
from payments.channels import (
    NotifyRejectedError,
    PaymentNotice,
    RefundNotice,
    RefundState,
    TradeState,
)
from tests.alipay.channel_support import APP_ID, SELLER_ID, alipay_keys, alipay_settings
from tests.alipay.vectors import alipay_vector


def _channel() -> AlipayChannel:
    return AlipayChannel(alipay_settings())


def _alipay_key() -> RSAPrivateKey:
    return load_private_key(alipay_keys()["private_key_pkcs8_pem"])


def _signed_form(fields: dict[str, str]) -> bytes:
    sign = rsa2_sign(_alipay_key(), notify_sign_content(fields))
    return urlencode(fields | {"sign_type": "RSA2", "sign": sign}).encode()


def _vector_fields() -> dict[str, str]:
    fields: dict[str, str] = alipay_vector("notify_rsa2")["params"]
    return {k: v for k, v in fields.items() if k not in ("sign", "sign_type")}


def test_the_vector_notify_is_a_verified_payment() -> None:
    vector = alipay_vector("notify_rsa2")
    assert (vector["params"]["app_id"], vector["params"]["seller_id"]) == (APP_ID, SELLER_ID)
    notice = _channel().parse_notify({}, urlencode(vector["params"]).encode())
    assert isinstance(notice, PaymentNotice)
    assert (notice.event_id, notice.account) == (vector["params"]["notify_id"], APP_ID)
    status = notice.status
    assert (status.out_trade_no, status.state, status.channel_state) == (
        "ORD20240101123045003",
        TradeState.paid,
        "TRADE_SUCCESS",
    )
    assert (status.amount_fen, status.channel_trade_no, status.payer_id) == (
        8888,
        "2024010122001446881000012345",
        "2088102177846880",
    )
    assert status.paid_at == datetime(2024, 1, 1, 4, 31, 10, tzinfo=UTC)  # 12:31:10 Beijing


def test_a_sha1_signed_notify_is_refused() -> None:
    fields = _vector_fields()
    content = notify_sign_content(fields).encode()
    sha1 = _alipay_key().sign(content, padding.PKCS1v15(), hashes.SHA1())
    form = fields | {"sign_type": "RSA2", "sign": base64.b64encode(sha1).decode()}
    with pytest.raises(NotifyRejectedError, match="does not verify"):
        _channel().parse_notify({}, urlencode(form).encode())


def test_a_full_refund_without_out_biz_no_is_still_a_paid_trade() -> None:
    fields = _vector_fields() | {
        "trade_status": "TRADE_CLOSED",
        "refund_fee": "88.88",
        "gmt_refund": "2024-01-02 09:00:00",
        "gmt_close": "2024-01-02 09:00:00",
    }
    notice = _channel().parse_notify({}, _signed_form(fields))
    assert isinstance(notice, PaymentNotice)
    assert (notice.status.state, notice.status.channel_state, notice.status.amount_fen) == (
        TradeState.paid,
        "TRADE_CLOSED",
        8888,
    )


def test_a_refund_with_out_biz_no_is_a_refund_notice() -> None:
    fields = _vector_fields() | {
        "trade_status": "TRADE_SUCCESS",
        "out_biz_no": "ORD20240101123045003R1",
        "refund_fee": "8.88",
        "gmt_refund": "2024-01-02 09:00:00",
    }
    notice = _channel().parse_notify({}, _signed_form(fields))
    assert isinstance(notice, RefundNotice)
    status = notice.status
    assert (status.out_refund_no, status.out_trade_no, status.state) == (
        "ORD20240101123045003R1",
        "ORD20240101123045003",
        RefundState.succeeded,
    )
    assert status.amount_fen is None  # refund_fee is the trade's total refunded, not this one
    assert status.succeeded_at == datetime(2024, 1, 2, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("trade_status", "state"),
    [("TRADE_CLOSED", TradeState.closed), ("WAIT_BUYER_PAY", TradeState.unpaid)],
)
def test_unpaid_statuses_are_payment_notices_without_payment(
    trade_status: str, state: TradeState
) -> None:
    fields = {
        k: v
        for k, v in _vector_fields().items()
        if k not in ("gmt_payment", "receipt_amount", "buyer_pay_amount", "invoice_amount")
    }
    notice = _channel().parse_notify({}, _signed_form(fields | {"trade_status": trade_status}))
    assert isinstance(notice, PaymentNotice)
    assert (notice.status.state, notice.status.paid_at) == (state, None)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"trade_status": "TRADE_PENDING"}, "unknown trade_status"),
        ({"total_amount": ""}, "total_amount is missing"),
        ({"total_amount": "88.888"}, "malformed yuan"),
        ({"notify_id": ""}, "notify_id is missing"),
        ({"gmt_payment": "2024/01/01 12:31:10"}, "Beijing time"),
    ],
)
def test_genuine_but_unreadable_notifies_are_refused(changes: dict[str, str], reason: str) -> None:
    form = _signed_form(_vector_fields() | changes)
    with pytest.raises(NotifyRejectedError, match=reason):
        _channel().parse_notify({}, form)


def test_a_notify_too_large_is_refused_unread() -> None:
    with pytest.raises(NotifyRejectedError, match="too large"):
        _channel().parse_notify({}, b"a=" + b"x" * 70_000)
