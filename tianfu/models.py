"""Every table of every domain, imported in one place for Alembic and the test fixtures."""

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
from merchants.models import Category, Merchant, Store
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
    "Base",
    "Category",
    "ChannelHealth",
    "Claim",
    "InboundPush",
    "Merchant",
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
    "ReconciliationItem",
    "ReconciliationRun",
    "Refund",
    "Store",
    "StoreChange",
    "StoreChangeCounter",
    "TemplateSend",
    "UserLocation",
    "WeChatCredential",
]
