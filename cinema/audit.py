"""A showtime's holds checked against the guard table, seat by seat: what the race test, the
bench and an operator ask after a rush. Read-only; an empty list of problems means consistent.

* no seat has two rows (the unique constraint's promise, checked rather than assumed);
* a live hold has a held row for each of its seats and no other row;
* a hold that ended (released, expired) has no held row left; a converted hold has a sold row
  and a ticket for each of its seats;
* every held row belongs to a hold marked held, and a user has at most one live hold.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cinema.models import Hold, HoldStatus, SeatHold, SeatHoldStatus, Ticket


@dataclass
class HoldAudit:
    holds: int = 0
    live_holds: int = 0
    held_seats: int = 0
    sold_seats: int = 0
    problems: list[str] = field(default_factory=list)


def audit_showtime(session: Session, showtime_id: int, *, now: datetime) -> HoldAudit:
    audit = HoldAudit()
    rows = session.execute(
        select(SeatHold.seat_id, SeatHold.hold_id, SeatHold.status).where(
            SeatHold.showtime_id == showtime_id
        )
    ).all()
    twice = [seat for seat, n in Counter(seat for seat, _, _ in rows).items() if n > 1]
    if twice:
        audit.problems.append(f"seats with two rows: {sorted(twice)}")
    by_hold: dict[int, dict[str, SeatHoldStatus]] = defaultdict(dict)
    for seat_id, hold_id, status in rows:
        by_hold[hold_id][seat_id] = status
    holds = session.scalars(select(Hold).where(Hold.showtime_id == showtime_id)).all()
    tickets = dict(
        iter(
            session.execute(
                select(Ticket.hold_id, func.count())
                .where(Ticket.showtime_id == showtime_id)
                .group_by(Ticket.hold_id)
            )
        )
    )
    audit.holds = len(holds)
    live_users: Counter[str] = Counter()
    for hold in holds:
        mine = by_hold.pop(hold.id, {})
        problem = _hold_problem(hold, mine, tickets.get(hold.id, 0), now)
        if problem:
            audit.problems.append(f"hold {hold.id} ({hold.status.value}): {problem}")
        if hold.status is HoldStatus.held and hold.expires_at > now:
            audit.live_holds += 1
            live_users[hold.openid] += 1
    if by_hold:
        audit.problems.append(f"rows of holds not of this showtime: {sorted(by_hold)}")
    doubled = sorted(openid for openid, n in live_users.items() if n > 1)
    if doubled:
        audit.problems.append(f"users with two live holds: {doubled}")
    audit.held_seats = sum(status is SeatHoldStatus.held for _, _, status in rows)
    audit.sold_seats = len(rows) - audit.held_seats
    return audit


def _hold_problem(
    hold: Hold, rows: dict[str, SeatHoldStatus], tickets: int, now: datetime
) -> str | None:
    seats = set(hold.seat_ids)
    held = {seat for seat, status in rows.items() if status is SeatHoldStatus.held}
    sold = set(rows) - held
    if hold.status is HoldStatus.converted:
        if sold != seats or held or tickets != len(seats):
            return f"sold {sorted(sold)}, {tickets} tickets, seats {sorted(seats)}"
        return None
    if sold or tickets:
        return f"sold {sorted(sold)} and {tickets} tickets without being paid"
    if hold.status is HoldStatus.held and hold.expires_at > now:
        return None if held == seats else f"rows {sorted(held)}, seats {sorted(seats)}"
    if hold.status is HoldStatus.held:  # expired, not yet marked: some rows may be gone
        return None if held <= seats else f"rows {sorted(held)} beyond seats {sorted(seats)}"
    return f"rows {sorted(held)} left after it ended" if held else None
