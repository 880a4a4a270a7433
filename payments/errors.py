"""Payment refusals: a stable code for clients and a Chinese message a WeChat user can read."""

from __future__ import annotations

from tianfu.errors import ConflictError, InvalidInputError, NotFoundError, TianfuError


class OrderNotFoundError(NotFoundError):
    code = "order_not_found"


class RefundNotFoundError(NotFoundError):
    code = "refund_not_found"


class AttemptNotFoundError(NotFoundError):
    code = "payment_attempt_not_found"


class InvalidOrderError(InvalidInputError):
    code = "invalid_order"


class StoreNotPayableError(ConflictError):
    code = "store_not_payable"


class IdempotencyKeyReusedError(ConflictError):
    code = "idempotency_key_reused"


class CouponInUseError(ConflictError):
    code = "coupon_in_use"


class OrderNotPayableError(ConflictError):
    code = "order_not_payable"


class OrderNotRefundableError(ConflictError):
    code = "order_not_refundable"


class RefundExceedsPaidError(ConflictError):
    code = "refund_exceeds_paid"


class ChannelNotConfiguredError(TianfuError):
    status_code = 503
    code = "payment_channel_not_configured"


class ChannelUnavailableError(TianfuError):
    status_code = 503
    code = "payment_channel_unavailable"


class PaymentDeclinedError(ConflictError):
    code = "payment_declined"


class AmountMismatchError(Exception):
    """A channel reported an amount or currency other than the attempt's: never applied."""
