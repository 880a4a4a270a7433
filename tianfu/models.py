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
    MerchantPayAccount,
    Order,
    OutboxMessage,
    PaymentAttempt,
    PaymentEvent,
    Refund,
)
from tianfu.orm import Base

__all__ = [
    "Base",
    "Category",
    "Claim",
    "InboundPush",
    "Merchant",
    "MerchantPayAccount",
    "Offer",
    "OfferStore",
    "OfferUserCount",
    "Order",
    "OutboxMessage",
    "PaymentAttempt",
    "PaymentEvent",
    "PointsAccount",
    "PointsEntry",
    "Refund",
    "Store",
    "StoreChange",
    "StoreChangeCounter",
    "TemplateSend",
    "UserLocation",
    "WeChatCredential",
]
