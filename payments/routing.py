"""Which channel takes an order, and in which order the others are tried.

The rules are data (`TIANFU_PAYMENTS_ROUTES`, see `payments.config.RouteRule`): the first rule
that matches the order (where the payer is, the amount, the merchant) gives the channel families
in order; the payer's own choice, if the rule offers it, goes first. Then each family is kept
only if the merchant takes it, an account is configured, the amount is within the channel's
limit and its circuit breaker is closed.

Falling back to the next channel happens only when the previous one could not be reached at all
(`ChannelUnreachableError`: no connection, so no request left). A timeout or a 5xx after the
request was sent is an unknown outcome: it is settled by querying that same channel, never by
trying another one, or the payer could pay twice.

The breaker lives in the database (`channel_health`), shared by every worker: after
`breaker_failures` unreachable calls in a row a channel account is skipped for
`breaker_cooldown_s`, then tried again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from payments import errors
from payments.channels import PaymentChannel, PayMethod
from payments.config import ClientKind, PaymentSettings, RouteRule
from payments.models import ChannelHealth, MerchantPayAccount
from tianfu.db import upsert_insert

_HEALTH = cast(Table, ChannelHealth.__table__)


@dataclass(frozen=True)
class RouteRequest:
    client: ClientKind  # "wechat" (inside WeChat's browser) or "browser"
    amount_fen: int
    merchant_id: int
    preferred: str | None = None  # the family the payer chose, if any


@dataclass(frozen=True)
class Route:
    channel: PaymentChannel
    method: PayMethod


def family_of(channel_name: str) -> str:
    return channel_name.split("_", 1)[0]


def method_for(family: str, client: ClientKind) -> PayMethod:
    """How a payer where they are pays through a family: WeChat's payment sheet inside WeChat,
    a QR code of WeChat Pay elsewhere, Alipay's own pages."""
    if family == "tenpay":
        return PayMethod.jsapi if client == "wechat" else PayMethod.native
    return PayMethod.page


def _matches(rule: RouteRule, request: RouteRequest) -> bool:
    return (
        rule.client in ("any", request.client)
        and request.amount_fen >= rule.min_amount_fen
        and (rule.max_amount_fen is None or request.amount_fen <= rule.max_amount_fen)
        and (rule.merchant_ids is None or request.merchant_id in rule.merchant_ids)
    )


def families_for(rules: Sequence[RouteRule], request: RouteRequest) -> list[str]:
    """The families the first matching rule offers, the payer's choice first (pure)."""
    rule = next((rule for rule in rules if _matches(rule, request)), None)
    if rule is None:
        raise errors.ChannelNotConfiguredError("没有适用于该订单的支付方式")
    families: list[str] = list(dict.fromkeys(rule.channels))
    if request.preferred is not None:
        if request.preferred not in families:
            raise errors.InvalidOrderError("该订单不支持所选支付方式")
        families.remove(request.preferred)
        families.insert(0, request.preferred)
    return families


class Router:
    def __init__(self, channels: Sequence[PaymentChannel], settings: PaymentSettings) -> None:
        self._channels = list(channels)
        self._settings = settings

    def routes(self, session: Session, request: RouteRequest, now: datetime) -> list[Route]:
        """The usable routes, best first; ChannelNotConfiguredError when there are none."""
        switches = {
            row.channel: row
            for row in session.scalars(
                select(MerchantPayAccount).where(
                    MerchantPayAccount.merchant_id == request.merchant_id
                )
            )
        }
        limits = self._settings.channel_max_amount_fen
        found: list[Route] = []
        for family in families_for(self._settings.routes, request):
            switch = switches.get(family)
            if switch is not None and not switch.enabled:
                continue
            if family in limits and request.amount_fen > limits[family]:
                continue
            channel = self._account(family, switch.account if switch else "")
            if channel is None or self.is_open(session, channel, now):
                continue
            found.append(Route(channel, method_for(family, request.client)))
        if not found:
            raise errors.ChannelNotConfiguredError("暂无可用的支付方式，请稍后再试")
        return found

    def _account(self, family: str, account: str) -> PaymentChannel | None:
        for channel in self._channels:
            if family_of(channel.name) == family and account in ("", channel.account):
                return channel
        return None

    # -- the breaker ------------------------------------------------------------------------

    @staticmethod
    def is_open(session: Session, channel: PaymentChannel, now: datetime) -> bool:
        until = session.scalar(
            select(ChannelHealth.open_until).where(
                ChannelHealth.channel == channel.name, ChannelHealth.account == channel.account
            )
        )
        return until is not None and until > now

    def record_unreachable(
        self, session: Session, channel: PaymentChannel, error: str, now: datetime
    ) -> None:
        """One more failure in a row; the breaker opens at the threshold."""
        session.execute(
            upsert_insert(session.get_bind().dialect.name)(_HEALTH)
            .values(
                channel=channel.name,
                account=channel.account,
                consecutive_failures=0,
                last_error="",
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["channel", "account"])
        )
        where = (_HEALTH.c.channel == channel.name, _HEALTH.c.account == channel.account)
        session.execute(
            update(_HEALTH)
            .where(*where)
            .values(
                consecutive_failures=_HEALTH.c.consecutive_failures + 1,
                last_error=error[:255],
                updated_at=now,
            )
        )
        session.execute(
            update(_HEALTH)
            .where(*where, _HEALTH.c.consecutive_failures >= self._settings.breaker_failures)
            .values(open_until=now + timedelta(seconds=self._settings.breaker_cooldown_s))
        )

    @staticmethod
    def record_reached(session: Session, channel: PaymentChannel, now: datetime) -> None:
        """The channel answered: the count starts again (a write only when there was one)."""
        session.execute(
            update(_HEALTH)
            .where(
                _HEALTH.c.channel == channel.name,
                _HEALTH.c.account == channel.account,
                _HEALTH.c.consecutive_failures > 0,
            )
            .values(consecutive_failures=0, open_until=None, updated_at=now)
        )
