"""Builds the payment machinery from settings: the channels of every configured account, the
flows over them, and the outbox handlers. Shared by the app factory and the CLI; it lives here
because it is the one place that knows both payments and the channel adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cinema.booking import install_payment_hooks
from cinema.service import expire_holds
from merchants.sessions import prune_sessions
from payments.alipay.client import build_alipay_channels
from payments.flows import Channels, Payments
from payments.jobs import Housekeeping, OutboxHandler
from payments.notices import payment_notice_handler
from tenpay_adapter.client import build_tenpay_channels
from tianfu.settings import TianfuSettings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from lbs.client import WeChatClient


def build_payments(
    settings: TianfuSettings, session_factory: sessionmaker[Session]
) -> Payments | None:
    """The payment flows, or None when no channel account is configured."""
    install_payment_hooks()  # cinema orders: tickets when paid, seats back when closed
    channels = Channels(
        [
            *build_tenpay_channels(settings.tenpay, default_appid=settings.wechat.appid),
            *build_alipay_channels(settings.alipay),
        ]
    )
    if not channels:
        return None
    return Payments(
        session_factory=session_factory,
        channels=channels,
        settings=settings.payments,
        notify_base_url=settings.public_base_url,
    )


def outbox_handlers(
    settings: TianfuSettings, wechat_client: WeChatClient | None
) -> dict[str, OutboxHandler]:
    """Who delivers each outbox topic; topics without a handler wait (and are listed)."""
    template_id = settings.payments.notice_template_id
    if wechat_client is None or template_id is None:
        return {}
    return {
        "payment_notice": payment_notice_handler(
            wechat_client.send_template,
            template_id=template_id,
            public_base_url=settings.public_base_url,
            warm_up=wechat_client.access_token,
        )
    }


def housekeeping_jobs() -> dict[str, Housekeeping]:
    """Tidying run with the payment jobs: holds past their time are marked expired and their
    seat rows deleted (they already count as free; this keeps the table small), and portal
    sessions long over are deleted."""
    return {"cinema holds": expire_holds, "portal sessions": prune_sessions}
