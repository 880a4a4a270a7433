"""Coupon refusals: each a stable code for clients and a Chinese message a WeChat user can read."""

from __future__ import annotations

from tianfu.errors import ConflictError, InvalidInputError, NotFoundError, TianfuError


class OfferNotFoundError(NotFoundError):
    code = "offer_not_found"


class CouponNotFoundError(NotFoundError):
    code = "coupon_not_found"


class PointsEntryNotFoundError(NotFoundError):
    code = "points_entry_not_found"


class InvalidOfferTermsError(InvalidInputError):
    code = "invalid_offer_terms"


class InvalidCouponCodeError(InvalidInputError):
    code = "invalid_coupon_code"


class InvalidPointsError(InvalidInputError):
    code = "invalid_points"


class ClaimLocationRequiredError(InvalidInputError):
    code = "claim_location_required"


# -- offer lifecycle --------------------------------------------------------------------------


class OfferTransitionError(ConflictError):
    code = "offer_invalid_transition"


class OfferNotEditableError(ConflictError):
    code = "offer_not_editable"


class OfferReviewConflictError(ConflictError):
    """Maker-checker: whoever wrote or last edited an offer may not approve or reject it."""

    code = "offer_review_conflict"


# -- claiming ---------------------------------------------------------------------------------


class OfferNotActiveError(ConflictError):
    code = "offer_not_active"


class OfferChangedError(ConflictError):
    """The terms changed between reading the offer and taking its stock; the client retries."""

    code = "offer_changed"


class OfferNotClaimableError(ConflictError):
    code = "offer_not_claimable"


class CouponOutOfStockError(ConflictError):
    code = "coupon_out_of_stock"


class CouponBudgetExhaustedError(ConflictError):
    code = "coupon_budget_exhausted"


class CouponDailyLimitReachedError(ConflictError):
    code = "coupon_daily_limit_reached"


class CouponLimitReachedError(ConflictError):
    code = "coupon_limit_reached"


class ClaimRequestConflictError(ConflictError):
    """One client request id reused for a different offer."""

    code = "claim_request_conflict"


class OutsideClaimAreaError(TianfuError):
    status_code = 403
    code = "outside_claim_area"


# -- redemption -------------------------------------------------------------------------------


class CouponAlreadyRedeemedError(ConflictError):
    code = "coupon_already_redeemed"


class CouponExpiredError(ConflictError):
    code = "coupon_expired"


class CouponVoidError(ConflictError):
    code = "coupon_void"


class CouponNotApplicableError(ConflictError):
    code = "coupon_not_applicable"


class CouponNotRedeemedError(ConflictError):
    code = "coupon_not_redeemed"


class CouponStoreMismatchError(ConflictError):
    code = "coupon_store_mismatch"


class CouponUndoTooLateError(ConflictError):
    code = "coupon_undo_too_late"


# -- points -----------------------------------------------------------------------------------


class PointsInsufficientError(ConflictError):
    code = "points_insufficient"


class PointsSourceConflictError(ConflictError):
    """A source key already applied with a different user or amount: a caller bug, not a retry."""

    code = "points_source_conflict"
