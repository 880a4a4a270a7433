from __future__ import annotations

from tianfu.errors import InvalidInputError, NotFoundError


class StoreNotFoundError(NotFoundError):
    code = "store_not_found"


class MerchantNotFoundError(NotFoundError):
    code = "merchant_not_found"


class UnknownCategoryError(InvalidInputError):
    code = "unknown_category"


class InvalidOpeningHoursError(InvalidInputError):
    code = "invalid_opening_hours"
