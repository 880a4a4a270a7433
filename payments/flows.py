"""Payments across transactions: the steps of `payments.service`, with the channel calls between
them. No transaction is held open while a channel is called, and every call is made with a number
written to the database before the call, so whatever happens to the call, a later query with the
same number finds out what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from payments import errors, service
from payments.channels import (
    ChannelDeclinedError,
    ChannelError,
    ChannelRetryableError,
    ChannelUnreachableError,
    NotifyAnswer,
    NotifyRejectedError,
    PaymentChannel,
    PaymentNotice,
    PayMethod,
    Prepay,
    PrepayRequest,
    RefundNotice,
    RefundRequest,
    RefundState,
    TradeAlreadyPaidError,
)
from payments.channels import RefundStatus as ChannelRefundStatus
from payments.config import ClientKind, PaymentSettings
from payments.models import (
    AttemptStatus,
    MerchantPayAccount,
    Order,
    OrderStatus,
    PaymentAttempt,
    PaymentEvent,
    Refund,
    RefundStatus,
)
from payments.routing import Route, Router, RouteRequest
from tianfu.db import upsert_insert
from tianfu.orm import utcnow

logger = logging.getLogger(__name__)

# Notify paths per channel name: what a channel is told its notify_url is.
NOTIFY_PATHS = {
    "tenpay_v3": "/payments/notify/tenpay/v3",
    "tenpay_v2": "/payments/notify/tenpay/v2",
    "alipay": "/payments/notify/alipay",
}


def family_of(channel_name: str) -> str:
    return channel_name.split("_", 1)[0]


class Channels:
    """The configured channel accounts, and which one takes a merchant's payments."""

    def __init__(self, channels: Iterable[PaymentChannel]) -> None:
        self._all = list(channels)
        self._by_key = {(c.name, c.account): c for c in self._all}

    def __bool__(self) -> bool:
        return bool(self._all)

    def get(self, name: str, account: str) -> PaymentChannel:
        channel = self._by_key.get((name, account))
        if channel is None:
            raise errors.ChannelNotConfiguredError(f"支付通道 {name}/{account} 未配置")
        return channel

    def all(self) -> list[PaymentChannel]:
        return list(self._all)

    def named(self, name: str) -> list[PaymentChannel]:
        return [c for c in self._all if c.name == name]

    def for_merchant(self, session: Session, merchant_id: int, family: str) -> PaymentChannel:
        chosen = session.scalar(
            select(MerchantPayAccount.account).where(
                MerchantPayAccount.merchant_id == merchant_id, MerchantPayAccount.channel == family
            )
        )
        candidates = [c for c in self._all if family_of(c.name) == family]
        for channel in candidates:
            if chosen is None or channel.account == chosen:
                return channel
        raise errors.ChannelNotConfiguredError(f"商户 {merchant_id} 没有可用的{family}支付账户")


@dataclass(frozen=True)
class Checkout:
    """What the payer's client needs, and the attempt it belongs to."""

    order_no: str
    out_trade_no: str
    method: PayMethod
    prepay_id: str | None
    jsapi_params: Mapping[str, str] | None
    code_url: str | None
    page_url: str | None

    def as_params(self) -> dict[str, Any]:
        return {
            "method": self.method.value,
            "prepay_id": self.prepay_id,
            "jsapi": dict(self.jsapi_params) if self.jsapi_params else None,
            "code_url": self.code_url,
            "page_url": self.page_url,
        }


def _checkout(attempt: PaymentAttempt, order_no: str) -> Checkout:
    params = attempt.client_params or {}
    return Checkout(
        order_no=order_no,
        out_trade_no=attempt.out_trade_no,
        method=PayMethod(attempt.method),
        prepay_id=attempt.prepay_id,
        jsapi_params=params.get("jsapi"),
        code_url=params.get("code_url"),
        page_url=params.get("page_url"),
    )


class Payments:
    """Everything that calls a channel. Thread-safe: it keeps nothing between calls but its
    configuration; all state is in the database."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        channels: Channels,
        settings: PaymentSettings,
        notify_base_url: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.channels = channels
        self.settings = settings
        self.notify_base_url = notify_base_url.rstrip("/")
        self.clock = clock
        self.router = Router(channels.all(), settings)

    def notify_url(self, channel_name: str) -> str:
        return self.notify_base_url + NOTIFY_PATHS[channel_name]

    # -- orders ---------------------------------------------------------------------------

    def create_order(self, request: service.OrderRequest) -> Order:
        with self.session_factory.begin() as session:
            order = service.create_order(session, request, settings=self.settings, now=self.clock())
            session.expunge(order)
            return order

    def pay(
        self,
        *,
        order_no: str,
        openid: str,
        client_ip: str,
        client: ClientKind = "wechat",
        preferred: str | None = None,
        return_url: str | None = None,
    ) -> Checkout:
        """Prepay an order through the channel routing picks and return what the payer's client
        needs. A repeated call returns the live prepay instead of asking for another. A channel
        that cannot be reached at all is skipped for the next one (`payments.routing`)."""
        now = self.clock()
        with self.session_factory.begin() as session:
            order = service.lock_order(session, order_no, openid=openid)
            if order.status not in (OrderStatus.created, OrderStatus.paying):
                raise errors.OrderNotPayableError(f"订单状态为 {order.status.value}，不能支付")
            routes = self.router.routes(
                session,
                RouteRequest(client, order.payable_fen, order.merchant_id, preferred),
                now,
            )
            best = routes[0]
            to_settle: list[PaymentAttempt] = []
            reusable: PaymentAttempt | None = None
            for attempt in service.open_attempts(session, order.id):
                same = (attempt.channel, attempt.account, attempt.method) == (
                    best.channel.name,
                    best.channel.account,
                    best.method.value,
                )
                if same and attempt.status is AttemptStatus.prepaid and order.expires_at > now:
                    reusable = attempt
                else:
                    to_settle.append(attempt)
            for attempt in [*to_settle, *([reusable] if reusable else [])]:
                session.expunge(attempt)
        if reusable is not None:
            # Shown again only while the channel still waits for the payer: a declined or
            # closed trade's prepay would only show the payer an error.
            try:
                applied = self.settle(reusable.out_trade_no)
            except ChannelError:
                return _checkout(reusable, order_no)  # the channel could not say: as it was
            if applied.attempt_status is AttemptStatus.paid:
                raise errors.OrderNotPayableError("订单已支付")
            if applied.attempt_status is AttemptStatus.prepaid:
                return _checkout(reusable, order_no)
        # Another way of paying was chosen: the old trade is closed first, or both could be paid.
        for attempt in to_settle:
            if self._close_at_channel(attempt) is not True:
                raise errors.OrderNotPayableError("上一笔支付仍在处理中，请稍后刷新")
        for route in routes:
            checkout = self._pay_through(route, order_no, openid, client_ip, return_url)
            if checkout is not None:
                return checkout
        raise errors.ChannelUnavailableError("支付通道暂时无法连接，请稍后再试")

    def _pay_through(
        self, route: Route, order_no: str, openid: str, client_ip: str, return_url: str | None
    ) -> Checkout | None:
        """One attempt through one route; None when its channel could not be reached at all."""
        channel, method = route.channel, route.method
        with self.session_factory.begin() as session:
            order = service.lock_order(session, order_no, openid=openid)
            attempt = service.begin_attempt(
                session,
                order=order,
                channel=channel.name,
                account=channel.account,
                method=method.value,
                now=self.clock(),
            )
            request = PrepayRequest(
                out_trade_no=attempt.out_trade_no,
                description=order.description,
                amount_fen=attempt.amount_fen,
                method=method,
                notify_url=self.notify_url(channel.name),
                expires_at=order.expires_at,
                client_ip=client_ip,
                payer_openid=order.openid,
                attach=order.order_no,
                return_url=return_url,
            )
            attempt_id = attempt.id
        prepay = self._prepay(channel, request, attempt_id)
        if prepay is None:
            return None
        checkout = Checkout(
            order_no=order_no,
            out_trade_no=request.out_trade_no,
            method=method,
            prepay_id=prepay.prepay_id,
            jsapi_params=prepay.jsapi_params,
            code_url=prepay.code_url,
            page_url=prepay.page_url,
        )
        with self.session_factory.begin() as session:
            service.record_prepay(
                session,
                attempt_id=attempt_id,
                prepay_id=prepay.prepay_id,
                client_params=checkout.as_params(),
                now=self.clock(),
            )
        return checkout

    def _prepay(
        self, channel: PaymentChannel, request: PrepayRequest, attempt_id: int
    ) -> Prepay | None:
        """The channel's prepay; None when it could not be reached on the first try (nothing
        left us: the attempt is closed and the breaker told)."""
        problem: ChannelError | None = None
        # A retry with the same number and parameters is safe: the channel hands back the same
        # prepay (or refuses the number), it never opens a second trade.
        for _ in range(2):
            try:
                prepay = channel.prepay(request)
            except ChannelUnreachableError as exc:
                if problem is None:  # the first try: nothing can have reached the channel
                    self._unreachable(channel, attempt_id, exc)
                    return None
                problem = exc  # after a try that may have arrived: still unknown
            except ChannelRetryableError as exc:
                problem = exc
            except ChannelDeclinedError as exc:
                with self.session_factory.begin() as session:
                    self.router.record_reached(session, channel, self.clock())
                    service.record_attempt_problem(
                        session,
                        attempt_id=attempt_id,
                        retryable=False,
                        code=exc.code,
                        message=exc.message,
                        now=self.clock(),
                    )
                raise errors.PaymentDeclinedError(f"支付通道拒绝：{exc.message}") from exc
            else:
                with self.session_factory.begin() as session:
                    self.router.record_reached(session, channel, self.clock())
                return prepay
        assert problem is not None
        with self.session_factory.begin() as session:
            service.record_attempt_problem(
                session,
                attempt_id=attempt_id,
                retryable=True,
                code=problem.code,
                message=problem.message,
                now=self.clock(),
            )
        raise errors.ChannelUnavailableError("支付通道暂时不可用，请稍后再试") from problem

    def _unreachable(
        self, channel: PaymentChannel, attempt_id: int, exc: ChannelUnreachableError
    ) -> None:
        now = self.clock()
        logger.warning("%s/%s unreachable: %s", channel.name, channel.account, exc.message)
        with self.session_factory.begin() as session:
            service.record_attempt_problem(
                session,
                attempt_id=attempt_id,
                retryable=False,
                code=exc.code or "UNREACHABLE",
                message=exc.message,
                now=now,
            )
            service.mark_attempt_closed(
                session, attempt_id=attempt_id, channel_state="UNREACHABLE", now=now
            )
            self.router.record_unreachable(session, channel, exc.message, now)

    # -- settling -------------------------------------------------------------------------

    def settle(self, out_trade_no: str) -> service.Applied:
        """Ask the channel about a trade and apply the answer."""
        with self.session_factory.begin() as session:
            attempt = service.get_attempt(session, out_trade_no)
            channel = self.channels.get(attempt.channel, attempt.account)
        status = channel.query(out_trade_no)
        with self.session_factory.begin() as session:
            return service.apply_trade_status(
                session, status=status, now=self.clock(), settings=self.settings
            )

    def _close_at_channel(self, attempt: PaymentAttempt) -> bool | None:
        """Close an attempt's trade: True when it is closed (or never existed), False when it
        turned out paid, None when the channel could not say (try again later)."""
        channel = self.channels.get(attempt.channel, attempt.account)
        try:
            applied = self.settle(attempt.out_trade_no)
            if applied.attempt_status is AttemptStatus.paid:
                return False
            if applied.attempt_status not in (AttemptStatus.closed, AttemptStatus.failed):
                channel.close(attempt.out_trade_no)
        except TradeAlreadyPaidError:
            self.settle(attempt.out_trade_no)
            return False
        except ChannelError as exc:
            logger.warning("closing %s: %s %s", attempt.out_trade_no, exc.code, exc.message)
            return None
        with self.session_factory.begin() as session:
            service.mark_attempt_closed(
                session, attempt_id=attempt.id, channel_state="CLOSED", now=self.clock()
            )
        return True

    def close_if_expired(self, order_no: str) -> bool:
        """Close an unpaid order past its time: its trades at the channel first."""
        now = self.clock()
        with self.session_factory.begin() as session:
            order = service.get_order(session, order_no)
            if order.status not in (OrderStatus.created, OrderStatus.paying):
                return False
            if order.expires_at > now:
                return False
            attempts = service.open_attempts(session, order.id)
            for attempt in attempts:
                session.expunge(attempt)
        for attempt in attempts:
            if self._close_at_channel(attempt) is not True:
                return False
        with self.session_factory.begin() as session:
            order = service.lock_order(session, order_no)
            if any(a.status is AttemptStatus.paid for a in service.attempts_of(session, order.id)):
                return False
            return service.close_order(session, order=order, now=now)

    # -- notifies -------------------------------------------------------------------------

    def handle_notify(
        self, channel_name: str, headers: Mapping[str, str], body: bytes
    ) -> NotifyAnswer:
        """Verify a notify, apply it once, and answer in the channel's protocol. Anything that
        cannot be verified or applied gets the failure answer and changes nothing, so the
        channel sends it again (and the jobs' queries settle the trade meanwhile)."""
        candidates = self.channels.named(channel_name)
        reason = "no channel configured"
        if not candidates:
            raise errors.ChannelNotConfiguredError(f"支付通道 {channel_name} 未配置")
        for channel in candidates:
            try:
                notice = channel.parse_notify(headers, body)
            except NotifyRejectedError as exc:
                reason = str(exc)
                continue
            break
        else:
            logger.warning("%s notify refused: %s", channel_name, reason)
            return candidates[0].notify_nack(reason)
        try:
            self._apply_notice(channel, notice)
        except (
            errors.AmountMismatchError,
            errors.AttemptNotFoundError,
            errors.RefundNotFoundError,
        ) as exc:
            logger.error("%s notify not applied: %s", channel_name, exc)
            return channel.notify_nack("not applied")
        return channel.notify_ack()

    def _apply_notice(self, channel: PaymentChannel, notice: PaymentNotice | RefundNotice) -> None:
        now = self.clock()
        is_payment = isinstance(notice, PaymentNotice)
        if isinstance(notice, PaymentNotice):
            reference = notice.status.out_trade_no
        else:
            reference = notice.status.out_refund_no
        with self.session_factory.begin() as session:
            inserted = session.execute(
                upsert_insert(session.get_bind().dialect.name)(PaymentEvent.__table__)
                .values(
                    channel=channel.name,
                    event_id=notice.event_id[:128],
                    kind="payment" if is_payment else "refund",
                    reference=reference[:64],
                    channel_state=notice.status.channel_state[:32],
                    received_at=now,
                )
                .on_conflict_do_nothing(index_elements=["channel", "event_id"])
                .returning(PaymentEvent.__table__.c.id)
            ).first()
            if inserted is None:
                return  # seen before: already applied (or being applied by another worker)
            if isinstance(notice, PaymentNotice):
                service.apply_trade_status(
                    session, status=notice.status, now=now, settings=self.settings
                )
            else:
                service.apply_refund_status(session, status=notice.status, now=now)

    # -- refunds --------------------------------------------------------------------------

    def refund(
        self,
        *,
        order_no: str,
        amount_fen: int,
        idempotency_key: str,
        reason: str,
        requested_by: str,
    ) -> Refund:
        with self.session_factory.begin() as session:
            refund = service.request_refund(
                session,
                order_no=order_no,
                amount_fen=amount_fen,
                idempotency_key=idempotency_key,
                reason=reason,
                requested_by=requested_by,
                now=self.clock(),
            )
            refund_id = refund.id
        self.push_refund(refund_id)
        with self.session_factory() as session:
            return session.get_one(Refund, refund_id)

    def push_refund(self, refund_id: int) -> None:
        """Send (or re-send, with the same out_refund_no) a pending refund; a processing one is
        asked about instead."""
        with self.session_factory.begin() as session:
            refund = session.get_one(Refund, refund_id)
            attempt = session.get_one(PaymentAttempt, refund.attempt_id)
            channel = self.channels.get(attempt.channel, attempt.account)
            request = RefundRequest(
                out_trade_no=attempt.out_trade_no,
                out_refund_no=refund.out_refund_no,
                refund_fen=refund.amount_fen,
                total_fen=attempt.amount_fen,
                reason=refund.reason,
                notify_url=self.notify_url(channel.name),
            )
            pending = refund.status is RefundStatus.pending
            tries = refund.tries
        try:
            status = (
                channel.refund(request)
                if pending
                else channel.query_refund(request.out_refund_no, out_trade_no=request.out_trade_no)
            )
        except ChannelRetryableError as exc:
            self._refund_problem(refund_id, exc, tries)
            return
        except ChannelDeclinedError as exc:
            self._refund_problem(refund_id, exc, tries)
            if pending:
                with self.session_factory.begin() as session:
                    service.apply_refund_status(
                        session,
                        status=ChannelRefundStatus(
                            out_refund_no=request.out_refund_no,
                            state=RefundState.closed,
                            channel_state=exc.code or "DECLINED",
                        ),
                        now=self.clock(),
                    )
            return
        with self.session_factory.begin() as session:
            service.apply_refund_status(session, status=status, now=self.clock())

    def _refund_problem(self, refund_id: int, exc: ChannelError, tries: int) -> None:
        now = self.clock()
        wait = min(self.settings.retry_base_s * 2**tries, self.settings.retry_max_s)
        with self.session_factory.begin() as session:
            service.record_refund_problem(
                session,
                refund_id=refund_id,
                code=exc.code,
                message=exc.message,
                retry_at=now + timedelta(seconds=wait),
                now=now,
            )
