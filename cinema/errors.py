"""Cinema refusals: a stable code for clients and a Chinese message a WeChat user can read."""

from __future__ import annotations

from collections.abc import Sequence

from tianfu.errors import ConflictError, InvalidInputError, NotFoundError


class HallNotFoundError(NotFoundError):
    code = "hall_not_found"


class ShowtimeNotFoundError(NotFoundError):
    code = "showtime_not_found"


class HoldNotFoundError(NotFoundError):
    code = "hold_not_found"


class TicketNotFoundError(NotFoundError):
    code = "ticket_not_found"


class InvalidLayoutError(InvalidInputError):
    code = "invalid_layout"


class InvalidShowtimeError(InvalidInputError):
    code = "invalid_showtime"


class SeatSelectionInvalidError(InvalidInputError):
    """The choice breaks a seating rule (cinema.seating): unknown or blocked seat, half a couple
    seat, too many seats, a lone seat left over. `problems` are the rule's codes by seat."""

    code = "seat_selection_invalid"

    def __init__(self, message: str, *, problems: Sequence[tuple[str | None, str]] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class SeatsTakenError(ConflictError):
    """Some chosen seats are sold or held by someone else; nothing was held."""

    code = "seats_taken"

    def __init__(self, seat_ids: Sequence[str]) -> None:
        names = "、".join(seat_ids)
        message = f"{names} 座" if names else "座位"
        super().__init__(f"{message}已售出或已被他人锁定，请重新选择")
        self.seat_ids = tuple(seat_ids)


class HoldInProgressError(ConflictError):
    """Another hold of the same user on the same showtime is being made at this very moment."""

    code = "hold_in_progress"


class SalesClosedError(ConflictError):
    code = "showtime_sales_closed"


class HoldExpiredError(ConflictError):
    code = "hold_expired"


class TicketAlreadyUsedError(ConflictError):
    code = "ticket_already_used"


class TicketNotValidHereError(ConflictError):
    """A ticket of another cinema, or of a showtime long over."""

    code = "ticket_not_valid_here"
