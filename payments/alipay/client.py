"""Alipay as a `PaymentChannel` (spec §3): one application (`app_id`) per channel.

The gateway (`gateway.py`) signs, sends and verifies; notifies are read in `notify.py`; here the
trade methods are mapped onto payments' words. Every answer is verified before a word of it is
believed; one that does not verify may still stand for a call that took effect, so it is a
ChannelRetryableError and the caller settles it by querying.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

import httpx

from payments.alipay.config import AlipaySettings
from payments.alipay.errors import AlipayProtocolError
from payments.alipay.gateway import (
    PAYING,
    SUCCESS,
    AlipayGateway,
    amount_fen,
    bad_response,
    optional_text,
    reading_answer,
    text,
)
from payments.alipay.notify import ACK, NACK, TRADE_STATES, NotifyReader, refunded
from payments.alipay.signing import BEIJING, beijing_timestamp, fen_of, parse_beijing, yuan
from payments.alipay.statement import read_bill, statement
from payments.channels import (
    ChannelDeclinedError,
    ChannelError,
    ChannelRetryableError,
    Notice,
    NotifyAnswer,
    OrderNumberUsedError,
    PaymentChannel,
    PayMethod,
    Prepay,
    PrepayRequest,
    RefundRequest,
    RefundState,
    RefundStatus,
    Statement,
    TradeAlreadyPaidError,
    TradeState,
    TradeStatus,
)

NAME: Final = "alipay"
TRADE_NOT_EXIST: Final = "ACQ.TRADE_NOT_EXIST"
# Precreate of a number whose trade is closed, or with changed details: a new attempt is needed.
_NUMBER_USED_CODES: Final = frozenset({"ACQ.TRADE_HAS_CLOSE", "ACQ.CONTEXT_INCONSISTENT"})
_BILL_NOT_EXIST: Final = frozenset({"isp.bill_not_exist"})
_SUBJECT_MAX: Final = 256
# The subject may not hold / = & (Alipay's field rules); they become spaces.
_SUBJECT_FORBIDDEN: Final = str.maketrans({"/": " ", "=": " ", "&": " "})
# Refunds remembered for `query_refund`; the oldest are forgotten first.
_REMEMBERED_REFUNDS: Final = 10_000
_TIMEOUT_MAX_MIN: Final = 15 * 24 * 60


class AlipayChannel:
    """One Alipay application. `clock` gives aware UTC now (request timestamps, in Beijing time)."""

    def __init__(
        self,
        settings: AlipaySettings,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._gateway = AlipayGateway(settings, http=http, clock=clock, owner=self)
        self._notify = NotifyReader(
            app_id=self._gateway.app_id,
            seller_id=settings.seller_id,
            alipay_key=self._gateway.alipay_key,
        )
        # out_refund_no → out_trade_no of refunds asked for through this channel; see
        # `query_refund` for why it is needed and what happens without it.
        self._refund_trades: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return NAME

    @property
    def account(self) -> str:
        return self._gateway.app_id

    # -- trades ----------------------------------------------------------------------------

    def prepay(self, request: PrepayRequest) -> Prepay:
        if request.method is PayMethod.jsapi:
            # WeChat's JSAPI has no Alipay counterpart (alipay.trade.create needs a buyer id).
            raise ChannelDeclinedError("Alipay has no WeChat JSAPI", code="METHOD_NOT_SUPPORTED")
        biz: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "total_amount": _yuan(request.amount_fen),
            "subject": _subject(request.description),
        }
        if request.method is PayMethod.page:
            return self._wap_prepay(request, biz)
        # Precreate documents the relative timeout_express only; rounded up to whole minutes.
        biz["timeout_express"] = _timeout_express(request.expires_at, self._gateway.now())
        try:
            data = self._gateway.call("alipay.trade.precreate", biz, notify_url=request.notify_url)
        except ChannelDeclinedError as exc:
            if exc.code in _NUMBER_USED_CODES:
                raise OrderNumberUsedError(exc.message, code=exc.code) from exc
            raise
        with reading_answer():
            _same_trade(data, request.out_trade_no)
            return Prepay(method=PayMethod.native, code_url=text(data, "qr_code"))

    def _wap_prepay(self, request: PrepayRequest, biz: dict[str, Any]) -> Prepay:
        """alipay.trade.wap.pay is a page the payer's browser opens: a signed GET to the gateway,
        no call from us (what the SDK's `page_execute(request, "GET")` builds)."""
        # wap.pay takes an absolute time_expire: a page opened late cannot stretch the trade.
        biz = biz | {
            "product_code": "QUICK_WAP_WAY",
            "time_expire": beijing_timestamp(request.expires_at),
        }
        if request.attach:
            biz["passback_params"] = request.attach
        params = self._gateway.signed_params(
            "alipay.trade.wap.pay",
            biz,
            notify_url=request.notify_url,
            return_url=request.return_url or self._settings.return_url,
        )
        return Prepay(method=PayMethod.page, page_url=self._gateway.page_url(params))

    def query(self, out_trade_no: str) -> TradeStatus:
        try:
            data = self._gateway.call(
                "alipay.trade.query",
                {"out_trade_no": out_trade_no},
                accept=frozenset({SUCCESS, PAYING}),
            )
        except ChannelDeclinedError as exc:
            # A precreate trade exists only once scanned (§3.4): not found is "never paid".
            if exc.code == TRADE_NOT_EXIST:
                return TradeStatus(out_trade_no, TradeState.not_found, channel_state=exc.code)
            raise
        with reading_answer():
            _same_trade(data, out_trade_no)
            if data.get("code") == PAYING:
                return TradeStatus(out_trade_no, TradeState.paying, channel_state=PAYING)
            return _queried_status(data)

    def close(self, out_trade_no: str) -> None:
        try:
            self._gateway.call("alipay.trade.close", {"out_trade_no": out_trade_no})
        except ChannelDeclinedError as exc:
            if exc.code == TRADE_NOT_EXIST:
                return  # never scanned, so nothing can be paid (§3.4)
            if exc.code == "ACQ.TRADE_STATUS_ERROR":
                self._after_status_error(out_trade_no, exc)
                return
            raise

    def _after_status_error(self, out_trade_no: str, exc: ChannelDeclinedError) -> None:
        """Only WAIT_BUYER_PAY trades close; TRADE_STATUS_ERROR means paid, or already closed.
        Spec §6: treat it as paid and query. The query tells the two apart, so closing twice
        stays a success; should it fail, the answer is "paid" and payments settles by query."""
        try:
            state = self.query(out_trade_no).state
        except ChannelError:
            raise TradeAlreadyPaidError(exc.message, code=exc.code) from exc
        if state is TradeState.closed:
            return
        raise TradeAlreadyPaidError(f"{exc.message} (query: {state})", code=exc.code) from exc

    # -- refunds ---------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundStatus:
        biz: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "refund_amount": _yuan(request.refund_fen),
            # The idempotency key (§3.4): a repeat refunds nothing and answers fund_change=N.
            "out_request_no": request.out_refund_no,
        }
        if request.reason:
            biz["refund_reason"] = request.reason[:256]
        data = self._gateway.call("alipay.trade.refund", biz)
        with reading_answer():
            _same_trade(data, request.out_trade_no)
        with self._lock:
            self._refund_trades[request.out_refund_no] = request.out_trade_no
            if len(self._refund_trades) > _REMEMBERED_REFUNDS:
                self._refund_trades.popitem(last=False)
        # 10000 only says the request was taken, and fund_change=N is ambiguous (a repeat, or
        # not yet): the refund query is the proof (§3.4, §6).
        try:
            return self._refund_query(request.out_trade_no, request.out_refund_no)
        except ChannelRetryableError:
            return RefundStatus(
                out_refund_no=request.out_refund_no,
                state=RefundState.processing,
                channel_state=f"fund_change={data.get('fund_change', '')}",
                out_trade_no=request.out_trade_no,
                amount_fen=request.refund_fen,
            )

    def query_refund(self, out_refund_no: str, *, out_trade_no: str | None = None) -> RefundStatus:
        """alipay.trade.fastpay.refund.query needs the trade's number besides `out_request_no`,
        and the channel interface passes the refund's alone. The trade's number is, in order:
        `out_trade_no` when given; the one this channel sent the refund with; else read from
        payments' numbering (`{out_trade_no}R{n}`, payments/service.py). None of them: declined.
        """
        trade = out_trade_no
        if trade is None:
            with self._lock:
                trade = self._refund_trades.get(out_refund_no)
        if trade is None:
            head, mark, seq = out_refund_no.rpartition("R")
            trade = head if mark and head and seq.isdigit() else None
        if trade is None:
            raise ChannelDeclinedError(
                f"the trade of refund {out_refund_no} is unknown", code="OUT_TRADE_NO_UNKNOWN"
            )
        return self._refund_query(trade, out_refund_no)

    def _refund_query(self, out_trade_no: str, out_refund_no: str) -> RefundStatus:
        data = self._gateway.call(
            "alipay.trade.fastpay.refund.query",
            {
                "out_trade_no": out_trade_no,
                "out_request_no": out_refund_no,
                "query_options": ["gmt_refund_pay"],
            },
        )
        with reading_answer():
            # refund_status=REFUND_SUCCESS is the proof. Absent: not received yet, or failed;
            # either way not done, so processing (payments asks again, or re-sends the refund
            # with the same number, which cannot refund twice).
            channel_state = optional_text(data, "refund_status") or "NOT_CONFIRMED"
            if channel_state != "REFUND_SUCCESS":
                return RefundStatus(
                    out_refund_no, RefundState.processing, channel_state, out_trade_no=out_trade_no
                )
            if text(data, "out_request_no") != out_refund_no:
                raise AlipayProtocolError("the answer is about another refund")
            _same_trade(data, out_trade_no)
            paid_at = optional_text(data, "gmt_refund_pay")
            return RefundStatus(
                out_refund_no=out_refund_no,
                state=RefundState.succeeded,
                channel_state=channel_state,
                amount_fen=fen_of(text(data, "refund_amount")),
                out_trade_no=out_trade_no,
                succeeded_at=parse_beijing(paid_at) if paid_at else None,
            )

    # -- notifies --------------------------------------------------------------------------

    def parse_notify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        # Nothing in the headers is signed; the form body is the whole notify (§3.2).
        return self._notify.read(body)

    def notify_ack(self) -> NotifyAnswer:
        return ACK

    def notify_nack(self, reason: str) -> NotifyAnswer:
        # The reason stays in our log; anything but `success` makes Alipay redeliver (§3.3).
        return NACK

    # -- statements ------------------------------------------------------------------------

    def download_statement(self, bill_date: date) -> Statement:
        biz = {"bill_type": "trade", "bill_date": bill_date.isoformat()}
        try:
            data = self._gateway.call("alipay.data.dataservice.bill.downloadurl.query", biz)
        except ChannelDeclinedError as exc:
            if exc.code not in _BILL_NOT_EXIST:
                raise
            # A past day without trades has no bill. Today's (or a later day's) cannot exist
            # yet (bills come the next morning): empty would read as "no trades", so it is a
            # try-again-later instead.
            if bill_date < self._gateway.now().astimezone(BEIJING).date():
                return statement(NAME, self.account, bill_date, None)
            raise ChannelRetryableError(exc.message, code="BILL_NOT_READY") from exc
        with reading_answer():
            url = httpx.URL(text(data, "bill_download_url"))
        if url.scheme not in ("https", "http"):
            raise bad_response("bill_download_url is not a web address")
        # The URL carries its own short-lived signature: no credentials of ours go with it.
        response = self._gateway.exchange(self._gateway.http.build_request("GET", url))
        if response.status_code != 200:
            raise ChannelRetryableError(
                f"bill download answered HTTP {response.status_code}",
                code=f"HTTP_{response.status_code}",
            )
        with reading_answer():
            bill = read_bill(response.content)
        if self._settings.seller_id and bill.account not in ("", self._settings.seller_id):
            raise bad_response("the bill is another seller's")
        return statement(NAME, self.account, bill_date, bill)


# -- mapping ---------------------------------------------------------------------------------


def _yuan(fen: int) -> str:
    try:
        return yuan(fen)
    except ValueError as exc:  # outside 0.01–100000000: Alipay would refuse it anyway
        raise ChannelDeclinedError(str(exc), code="INVALID_AMOUNT") from exc


def _subject(description: str) -> str:
    return description.translate(_SUBJECT_FORBIDDEN)[:_SUBJECT_MAX]


def _timeout_express(expires_at: datetime, now: datetime) -> str:
    """Minutes left until `expires_at`, rounded up, within Alipay's 1m–15d."""
    minutes = math.ceil((expires_at - now).total_seconds() / 60)
    return f"{min(max(minutes, 1), _TIMEOUT_MAX_MIN)}m"


def _same_trade(data: Mapping[str, Any], out_trade_no: str) -> None:
    found = data.get("out_trade_no")
    if found is not None and found != out_trade_no:
        raise AlipayProtocolError("the answer is about another trade")


def _queried_status(data: Mapping[str, Any]) -> TradeStatus:
    """alipay.trade.query's answer. It names the payment time `send_pay_date` and the buyer
    `buyer_user_id` (a notify says gmt_payment and buyer_id)."""
    channel_state = text(data, "trade_status")
    state = TRADE_STATES.get(channel_state)
    if state is None:
        raise AlipayProtocolError(f"unknown trade_status {channel_state!r}")
    paid_at_text = optional_text(data, "send_pay_date") or optional_text(data, "gmt_payment")
    # TRADE_CLOSED is also a *fully refunded* trade (§3.3). Money moved, then went back: that
    # is paid in payments' words (like WeChat's REFUND), never "closed, no money moved", or an
    # attempt that was paid and refunded would read as never paid. A payment time or refund
    # fields give it away; an unpaid trade closed has neither.
    if state is TradeState.closed and (paid_at_text is not None or refunded(data)):
        state = TradeState.paid
    paid = state is TradeState.paid
    return TradeStatus(
        out_trade_no=text(data, "out_trade_no"),
        state=state,
        channel_state=channel_state,
        # Paid: the amount and the trade number are required, payments records both.
        channel_trade_no=text(data, "trade_no") if paid else optional_text(data, "trade_no"),
        amount_fen=amount_fen(data, "total_amount", required=paid),
        currency=optional_text(data, "trans_currency"),
        paid_at=parse_beijing(paid_at_text) if paid_at_text else None,
        payer_id=optional_text(data, "buyer_user_id") or optional_text(data, "buyer_id"),
    )


# -- the factory -----------------------------------------------------------------------------


def build_alipay_channels(settings: AlipaySettings) -> list[PaymentChannel]:
    """The configured application's channel; none when Alipay is not configured."""
    if settings.app_id is None:
        return []
    return [AlipayChannel(settings)]
