"""What the two WeChat Pay channels share (spec §1, §2, §6), and the factory that builds one
channel per configured merchant account.

The v3 channel is `client_v3.TenpayV3Channel` (its signing and platform keys: `client_v3_wire`),
the v2 one `client_v2.TenpayV2Channel`. Both map WeChat's words onto `payments.channels` here, so
the two cannot drift apart: one table of trade states, one of refund states, one error mapping,
one statement conversion.
"""

from __future__ import annotations

import ssl
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import httpx
from pydantic import SecretStr

from payments.channels import (
    ChannelDeclinedError,
    ChannelError,
    ChannelRetryableError,
    ChannelUnreachableError,
    OrderNumberUsedError,
    PaymentChannel,
    RefundState,
    Statement,
    StatementLine,
    TradeAlreadyPaidError,
    TradeState,
)
from tenpay_adapter.bill import Bill, BillRow
from tenpay_adapter.config import TenpayAccount, TenpaySettings

# Outcome unknown: retry with the same numbers, or query (spec §1.3, §1.7, §2.4).
RETRYABLE_CODES = frozenset(
    {"SYSTEMERROR", "SYSTEM_ERROR", "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED"}
)
PAID_CODES = frozenset({"ORDERPAID"})
CLOSED_CODES = frozenset({"ORDERCLOSED", "ORDER_CLOSED"})
NOT_FOUND_CODES = frozenset({"ORDERNOTEXIST", "ORDER_NOT_EXIST"})
# The live gateway mostly says INVALID_REQUEST "201 商户订单号重复" instead of the documented
# OUT_TRADE_NO_USED (spec §1.3); the message is the only way to tell it from other
# INVALID_REQUESTs (a refund over the paid amount is one too).
_NUMBER_USED_TEXT = "商户订单号重复"

TRADE_STATES: dict[str, TradeState] = {
    "SUCCESS": TradeState.paid,
    "REFUND": TradeState.paid,  # paid, and a refund has started (spec §1.5)
    "NOTPAY": TradeState.unpaid,
    "USERPAYING": TradeState.paying,
    "CLOSED": TradeState.closed,
    "REVOKED": TradeState.closed,
    "PAYERROR": TradeState.failed,
}
REFUND_STATES: dict[str, RefundState] = {
    "SUCCESS": RefundState.succeeded,
    "PROCESSING": RefundState.processing,
    "CLOSED": RefundState.closed,
    "REFUNDCLOSE": RefundState.closed,
    "ABNORMAL": RefundState.abnormal,
    "CHANGE": RefundState.abnormal,  # v2: the refund went to an abnormal account (spec §1.8)
}
# WeChat Pay charges whole fen; the bill shows them with five decimals (0.53000).
_FEN_PER_YUAN = Decimal(100)


def trade_state(channel_state: str) -> TradeState:
    """A state word we do not know is no answer at all: the caller asks again later."""
    state = TRADE_STATES.get(channel_state)
    if state is None:
        raise ChannelRetryableError(f"unknown trade_state {channel_state!r}", code="BAD_RESPONSE")
    return state


def refund_state(channel_state: str) -> RefundState:
    state = REFUND_STATES.get(channel_state)
    if state is None:
        raise ChannelRetryableError(f"unknown refund status {channel_state!r}", code="BAD_RESPONSE")
    return state


def channel_error(code: str, message: str) -> ChannelError:
    """A WeChat Pay error code (v2 err_code, v3 `code`) as a channel error. Callers handle the
    codes that mean success for their call (ORDERCLOSED on close, ORDERNOTEXIST on query)."""
    text = message or code
    if code in RETRYABLE_CODES:
        return ChannelRetryableError(text, code=code)
    if code in PAID_CODES:
        return TradeAlreadyPaidError(text, code=code)
    if code == "OUT_TRADE_NO_USED" or (code == "INVALID_REQUEST" and _NUMBER_USED_TEXT in text):
        return OrderNumberUsedError(text, code=code)
    return ChannelDeclinedError(text, code=code)


def bad_response(message: str) -> ChannelRetryableError:
    """An answer we cannot trust or read. The call may still have taken effect, so this is
    never a decline: the caller settles it by querying."""
    return ChannelRetryableError(message, code="BAD_RESPONSE")


@contextmanager
def reading_answer() -> Iterator[None]:
    """Inside: a verified answer is read; a shape we cannot read is a `bad_response`."""
    try:
        yield
    except ValueError as exc:  # TenpayProtocolError, JSON and UTF-8 errors are all ValueErrors
        raise bad_response(f"unreadable answer: {exc}") from exc


def secret(value: SecretStr | None, name: str) -> str:
    # TenpayAccount's validator guarantees the keys of its api_version; this keeps mypy honest.
    if value is None:
        raise ValueError(f"the account lacks {name}")
    return value.get_secret_value()


def default_http_client(
    account: TenpayAccount, *, tls: ssl.SSLContext | None = None
) -> httpx.Client:
    """Explicit timeouts (STYLE.md §4): connecting fails fast, the answer gets `timeout_s`.
    `tls` carries a client certificate where one is needed (v2 refunds)."""
    timeout = httpx.Timeout(account.timeout_s, connect=min(account.timeout_s, 5.0))
    return httpx.Client(timeout=timeout, verify=tls if tls is not None else True)


def owned_http_client(
    owner: object, account: TenpayAccount, *, tls: ssl.SSLContext | None = None
) -> httpx.Client:
    """A default client closed when `owner` is collected. Channels live as long as the app and
    have no close of their own (`close` closes trades); without this their pooled keep-alive
    sockets would be left to the garbage collector, which warns about each one."""
    http = default_http_client(account, tls=tls)
    weakref.finalize(owner, http.close)
    return http


def send(http: httpx.Client, request: httpx.Request) -> httpx.Response:
    """One exchange; a timeout or a broken connection leaves the outcome unknown."""
    try:
        return http.send(request)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        # No connection was made, so no byte of the request left: nothing can have happened at
        # WeChat Pay, and routing may try another channel.
        raise ChannelUnreachableError(
            f"WeChat Pay cannot be reached ({type(exc).__name__})", code="UNREACHABLE"
        ) from exc
    except httpx.TimeoutException as exc:
        raise ChannelRetryableError("WeChat Pay did not answer in time", code="TIMEOUT") from exc
    except httpx.TransportError as exc:
        raise ChannelRetryableError(
            f"WeChat Pay cannot be reached ({type(exc).__name__})", code="NETWORK"
        ) from exc


# -- statements ---------------------------------------------------------------------------------


def _fee_fen(row: BillRow) -> int:
    # Negative on refund rows: the fee of the refunded part is given back.
    return int((row.fee_yuan * _FEN_PER_YUAN).to_integral_value(rounding=ROUND_HALF_UP))


def _statement_line(row: BillRow) -> StatementLine:
    if row.trade_state == "REFUND":
        # 申请退款金额 is what was asked for, as RefundStatus.amount_fen reports it; the legacy
        # layout lacks the column, and its 退款金额 is the same number without coupons.
        requested = row.requested_refund_fen if "申请退款金额" in row.raw else row.refund_fen
        return StatementLine(
            kind="refund",
            out_trade_no=row.out_trade_no,
            channel_trade_no=row.transaction_id,
            amount_fen=requested,
            channel_state=row.refund_state,
            at=row.traded_at,
            out_refund_no=row.out_refund_no or None,
            fee_fen=_fee_fen(row),
        )
    # 订单金额 is the order total, as queries and notifies report it (amount.total, total_fee);
    # 应结订单金额 is that less WeChat's coupons. The legacy layout's 总金额 is the total.
    total = row.order_amount_fen if "订单金额" in row.raw else row.amount_fen
    return StatementLine(
        kind="payment",
        out_trade_no=row.out_trade_no,
        channel_trade_no=row.transaction_id,
        amount_fen=total,
        channel_state=row.trade_state,
        at=row.traded_at,
        fee_fen=_fee_fen(row),
    )


def statement(channel: str, account: str, bill_date: date, bill: Bill | None) -> Statement:
    """`bill` None: the channel has no bill for the day (no trades)."""
    lines = tuple(_statement_line(row) for row in bill.rows) if bill is not None else ()
    return Statement(channel=channel, account=account, bill_date=bill_date, lines=lines)


# -- the factory --------------------------------------------------------------------------------


def build_tenpay_channels(
    settings: TenpaySettings, *, default_appid: str | None
) -> list[PaymentChannel]:
    """One channel per configured account, v3 or v2 per `api_version`; none when WeChat Pay
    is not configured."""
    # Imported here: both channel modules import this one for the shared tables.
    from tenpay_adapter.client_v2 import TenpayV2Channel
    from tenpay_adapter.client_v3 import TenpayV3Channel

    channels: list[PaymentChannel] = []
    for account in settings.all_accounts(default_appid=default_appid):
        if account.api_version == "v3":
            channels.append(TenpayV3Channel(account))
        else:
            channels.append(
                TenpayV2Channel(
                    account,
                    client_cert_path=account.client_cert_path,
                    client_key_path=account.client_key_path,
                )
            )
    return channels
