"""The state machines of orders, attempts and refunds: which move is allowed from where.

This table is the one place the rules live. `payments.service` turns each move into a
conditional UPDATE (`... WHERE status IN (<allowed sources>)`), so the database, not the order
in which events arrive, decides: a late or duplicate event finds no row in a source state and
changes nothing. Terminal states have no way out.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from payments.models import AttemptStatus, OrderStatus, RefundStatus

S = TypeVar("S", bound=StrEnum)

# target -> the states it may be reached from
ORDER_MOVES: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.paying: frozenset({OrderStatus.created, OrderStatus.paying}),
    OrderStatus.paid: frozenset({OrderStatus.created, OrderStatus.paying}),
    OrderStatus.partially_refunded: frozenset({OrderStatus.paid, OrderStatus.partially_refunded}),
    OrderStatus.refunded: frozenset({OrderStatus.paid, OrderStatus.partially_refunded}),
    OrderStatus.closed: frozenset({OrderStatus.created, OrderStatus.paying}),
}

ATTEMPT_MOVES: Mapping[AttemptStatus, frozenset[AttemptStatus]] = {
    AttemptStatus.prepaid: frozenset({AttemptStatus.created, AttemptStatus.unknown}),
    AttemptStatus.unknown: frozenset({AttemptStatus.created}),
    # A payment is news from the channel and wins over anything we believed short of paid:
    # even a trade we took for closed or failed, if the channel says money moved.
    AttemptStatus.paid: frozenset(
        {
            AttemptStatus.created,
            AttemptStatus.prepaid,
            AttemptStatus.unknown,
            AttemptStatus.failed,
            AttemptStatus.closed,
        }
    ),
    AttemptStatus.failed: frozenset(
        {AttemptStatus.created, AttemptStatus.prepaid, AttemptStatus.unknown}
    ),
    AttemptStatus.closed: frozenset(
        {AttemptStatus.created, AttemptStatus.prepaid, AttemptStatus.unknown, AttemptStatus.failed}
    ),
}

REFUND_MOVES: Mapping[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.processing: frozenset({RefundStatus.pending}),
    RefundStatus.succeeded: frozenset(
        {RefundStatus.pending, RefundStatus.processing, RefundStatus.abnormal}
    ),
    RefundStatus.closed: frozenset({RefundStatus.pending, RefundStatus.processing}),
    RefundStatus.abnormal: frozenset({RefundStatus.pending, RefundStatus.processing}),
}

TERMINAL_ORDER = frozenset({OrderStatus.refunded, OrderStatus.closed})
TERMINAL_ATTEMPT = frozenset({AttemptStatus.paid})
TERMINAL_REFUND = frozenset({RefundStatus.succeeded, RefundStatus.closed})


def sources(moves: Mapping[S, frozenset[S]], target: S) -> frozenset[S]:
    """The states `target` may be reached from (empty: it can never be reached by a move)."""
    return moves.get(target, frozenset())


def can_move(moves: Mapping[S, frozenset[S]], source: S, target: S) -> bool:
    return source in sources(moves, target)
