"""Alipay's async notify (spec §3.2, §3.3): a form POST, verified with the Alipay public key over
every field but `sign` and `sign_type`, then read into a payments notice.

alipay-sdk-python has no helper for this (§3.5), and its `verify_with_rsa` would take a SHA-1
signature: the content is built by `signing.notify_sign_content` and verified by our
`rsa2_verify` (SHA-256 only).

Alipay sends one kind of notify (`trade_status_sync`) for everything that happens to a trade, so
refunds arrive on it too:

- TRADE_SUCCESS / TRADE_FINISHED without refund fields: the payment → PaymentNotice, paid.
- Any status with `out_biz_no` and a `refund_fee`/`gmt_refund`: a refund went through. Alipay
  sends it after the refund succeeds; `out_biz_no` is the refund's `out_request_no` (our
  `out_refund_no`) → RefundNotice, succeeded. A partial refund leaves the trade TRADE_SUCCESS, a
  full one TRADE_CLOSED. `refund_fee` is the trade's refunded *total*, not this refund's amount,
  so the notice carries no amount (payments knows its own).
- TRADE_CLOSED with refund fields but no `out_biz_no`: a full refund we cannot name. The trade
  was paid, so → PaymentNotice, paid (TradeState.paid covers "refunds started"): a no-op for a
  paid attempt, and the truth for one whose payment notify was lost. Reporting it closed would
  say no money moved, which is false.
- TRADE_CLOSED without refund fields: closed unpaid (timeout or close) → PaymentNotice, closed.
- WAIT_BUYER_PAY never triggers a notify (§3.3); should one come, it is read as unpaid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from payments.alipay.errors import AlipayProtocolError
from payments.alipay.gateway import amount_fen, optional_text, text
from payments.alipay.signing import notify_sign_content, parse_beijing, rsa2_verify
from payments.channels import (
    Notice,
    NotifyAnswer,
    NotifyRejectedError,
    PaymentNotice,
    RefundNotice,
    RefundState,
    RefundStatus,
    TradeState,
    TradeStatus,
)

MAX_NOTIFY_BYTES: Final = 64 * 1024
# Alipay retries until the body is exactly `success` (§3.3); the status code does not matter.
ACK: Final = NotifyAnswer(status_code=200, body=b"success", media_type="text/plain")
NACK: Final = NotifyAnswer(status_code=200, body=b"fail", media_type="text/plain")

TRADE_STATES: Final[Mapping[str, TradeState]] = {
    "WAIT_BUYER_PAY": TradeState.unpaid,
    "TRADE_SUCCESS": TradeState.paid,
    "TRADE_FINISHED": TradeState.paid,  # paid, no longer refundable
    "TRADE_CLOSED": TradeState.closed,  # unless refunded: see `refunded`
}


@dataclass(frozen=True)
class NotifyReader:
    """The checks of one application: its id, the seller it pays, Alipay's key."""

    app_id: str
    seller_id: str | None
    alipay_key: RSAPublicKey

    def read(self, body: bytes) -> Notice:
        params = _form(body)
        sign = params.get("sign", "")
        if not sign:
            raise NotifyRejectedError("the notify is unsigned")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise NotifyRejectedError("the notify is not signed with RSA2")
        if not rsa2_verify(self.alipay_key, notify_sign_content(params), sign):
            raise NotifyRejectedError("the notify's signature does not verify")
        # Checked after the signature (§3.3): a genuine notify for another app or seller.
        if params.get("app_id") != self.app_id:
            raise NotifyRejectedError("the notify is for another app_id")
        if self.seller_id is not None and params.get("seller_id") != self.seller_id:
            raise NotifyRejectedError("the notify is for another seller_id")
        try:
            return self._notice(params)
        except AlipayProtocolError as exc:
            raise NotifyRejectedError(f"unreadable notify: {exc}") from None

    def _notice(self, params: Mapping[str, str]) -> Notice:
        event_id = text(params, "notify_id")
        status = trade_status(params)
        out_request_no = optional_text(params, "out_biz_no")
        if refunded(params) and out_request_no is not None:
            gmt_refund = optional_text(params, "gmt_refund")
            refund = RefundStatus(
                out_refund_no=out_request_no,
                state=RefundState.succeeded,
                channel_state=status.channel_state,
                out_trade_no=status.out_trade_no,
                succeeded_at=parse_beijing(gmt_refund) if gmt_refund else None,
            )
            return RefundNotice(event_id=event_id, status=refund, account=self.app_id)
        return PaymentNotice(event_id=event_id, status=status, account=self.app_id)


def refunded(data: Mapping[str, object]) -> bool:
    """Refund fields on a trade (a notify, or a query answer): money moved, then went back."""
    fee = data.get("refund_fee")
    return (isinstance(fee, str) and fee not in ("", "0", "0.0", "0.00")) or bool(
        data.get("gmt_refund")
    )


def trade_status(data: Mapping[str, str]) -> TradeStatus:
    channel_state = text(data, "trade_status")
    state = TRADE_STATES.get(channel_state)
    if state is None:
        raise AlipayProtocolError(f"unknown trade_status {channel_state!r}")
    if state is TradeState.closed and refunded(data):
        state = TradeState.paid  # fully refunded: it was paid (§3.3)
    paid = state is TradeState.paid
    gmt_payment = optional_text(data, "gmt_payment")
    return TradeStatus(
        out_trade_no=text(data, "out_trade_no"),
        state=state,
        channel_state=channel_state,
        channel_trade_no=text(data, "trade_no") if paid else optional_text(data, "trade_no"),
        # A paid notify must say how much: payments compares it with the order (§3.3).
        amount_fen=amount_fen(data, "total_amount", required=paid),
        paid_at=parse_beijing(gmt_payment) if gmt_payment else None,
        payer_id=optional_text(data, "buyer_id"),
    )


def _form(body: bytes) -> dict[str, str]:
    if len(body) > MAX_NOTIFY_BYTES:
        raise NotifyRejectedError("notify body too large")
    try:
        # We ask for charset=utf-8, so Alipay notifies in UTF-8; anything else is refused.
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise NotifyRejectedError("the notify is not a UTF-8 form") from None
    params = dict(pairs)
    if len(params) != len(pairs):  # which of two values would be signed, which read?
        raise NotifyRejectedError("the notify repeats a field")
    if not params:
        raise NotifyRejectedError("the notify is empty")
    return params
