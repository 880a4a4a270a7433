"""Every table of every domain, imported in one place for Alembic and the test fixtures."""

from cinema.models import Film, Hall, Hold, SeatHold, Showtime, Ticket
from coupons.models import (
    Claim,
    Offer,
    OfferStore,
    OfferUserCount,
    PointsAccount,
    PointsEntry,
)
from lbs.models import InboundPush, TemplateSend, UserLocation, WeChatCredential
from merchants.changes import StoreChange, StoreChangeCounter
from merchants.models import (
    AuditEntry,
    Category,
    Merchant,
    MerchantApiKey,
    MerchantApplication,
    PortalAccount,
    PortalSession,
    StaffStoreScope,
    Store,
)
from payments.models import (
    ChannelHealth,
    MerchantPayAccount,
    MerchantSettlement,
    Order,
    OutboxMessage,
    PaymentAttempt,
    PaymentEvent,
    ReconciliationItem,
    ReconciliationRun,
    Refund,
)
from tianfu.orm import Base

__all__ = [
    "AuditEntry",
    "Base",
    "Category",
    "ChannelHealth",
    "Claim",
    "Film",
    "Hall",
    "Hold",
    "InboundPush",
    "Merchant",
    "MerchantApiKey",
    "MerchantApplication",
    "MerchantPayAccount",
    "MerchantSettlement",
    "Offer",
    "OfferStore",
    "OfferUserCount",
    "Order",
    "OutboxMessage",
    "PaymentAttempt",
    "PaymentEvent",
    "PointsAccount",
    "PointsEntry",
    "PortalAccount",
    "PortalSession",
    "ReconciliationItem",
    "ReconciliationRun",
    "Refund",
    "SeatHold",
    "Showtime",
    "StaffStoreScope",
    "Store",
    "StoreChange",
    "StoreChangeCounter",
    "TemplateSend",
    "Ticket",
    "UserLocation",
    "WeChatCredential",
]
