from __future__ import annotations

from tianfu.errors import ConflictError, InvalidInputError, NotFoundError, TianfuError


class StoreNotFoundError(NotFoundError):
    code = "store_not_found"


class MerchantNotFoundError(NotFoundError):
    code = "merchant_not_found"


class UnknownCategoryError(InvalidInputError):
    code = "unknown_category"


class InvalidOpeningHoursError(InvalidInputError):
    code = "invalid_opening_hours"


# -- the partner portal ---------------------------------------------------------------------------
# Messages are Chinese: the portal shows them to merchants and bank staff as they are.


class PortalAccessError(TianfuError):
    """Refusals of the portal's gate (login, CSRF, role, scope). merchants.portal_web renders
    them as a page under /portal and as the usual JSON error under /api."""

    status_code = 403
    code = "portal_forbidden"


class LoginRequiredError(PortalAccessError):
    status_code = 401
    code = "portal_login_required"


class CsrfRejectedError(PortalAccessError):
    status_code = 403
    code = "csrf_rejected"


class PortalForbiddenError(PortalAccessError):
    status_code = 403
    code = "portal_forbidden"


class OutOfScopeError(PortalAccessError):
    """Not found, or not this account's to see: the answer is the same, so probing another
    merchant's ids learns nothing."""

    status_code = 404
    code = "not_found"


class MerchantNotApprovedError(PortalAccessError):
    status_code = 403
    code = "merchant_not_approved"


class FormTooLargeError(PortalAccessError):
    status_code = 413
    code = "form_too_large"


class FormLengthRequiredError(PortalAccessError):
    status_code = 411
    code = "length_required"


class FormUnreadableError(PortalAccessError):
    status_code = 400
    code = "form_unreadable"


class UsernameTakenError(ConflictError):
    code = "username_taken"


class InvalidAccountError(InvalidInputError):
    code = "invalid_account"


class AccountNotFoundError(NotFoundError):
    code = "account_not_found"


class ApplicationNotFoundError(NotFoundError):
    code = "application_not_found"


class ApplicationStateError(ConflictError):
    """The action does not fit the application's or merchant's current state (approving one
    already reviewed, resubmitting one under review, suspending a pending merchant)."""

    code = "application_state_conflict"


class LicenceInUseError(ConflictError):
    code = "licence_in_use"


class InvalidReviewError(InvalidInputError):
    code = "invalid_review"


# -- stores and the merchant REST API (API keys) --------------------------------------------------


class StoreStateError(ConflictError):
    """Closing a store that is already closed, reopening one that is open."""

    code = "store_state_conflict"


class ApiKeyRejectedError(PortalAccessError):
    """No key, a malformed, unknown or revoked one: one answer for all, so nothing is learnt."""

    status_code = 401
    code = "api_key_invalid"


class ApiKeyReadOnlyError(PortalAccessError):
    status_code = 403
    code = "api_key_read_only"


class ApiKeyLimitError(ConflictError):
    code = "api_key_limit"
