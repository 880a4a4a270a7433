"""The rules of reconciliation, with no database: one statement's lines against a snapshot of
our books (`payments.reconcile` loads it), giving the lines that matched and every difference
(spec §4 guarantee 8: missing, extra, amount or status).

A finding says how it can be settled, if it can: a payment the channel has as paid and we do not
is queried (the query's answer, not the statement, is what gets applied); a refund the channel
completed that we hold as unfinished is asked about. Everything else is for people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from payments.channels import StatementLine
from payments.models import AttemptStatus, RefundStatus

# A statement line carries the channel's own word (StatementLine.channel_state). These say money
# moved. WeChat Pay (§1.10): a payment row's 交易状态 SUCCESS (REFUND once refunds began), a
# refund row's 退款状态 SUCCESS. Alipay's bill lists finished business only, and its statement
# lines carry the 业务类型 (交易, 退款); its trade statuses are here too for safety (§3.3).
PAID_WORDS = frozenset({"SUCCESS", "REFUND", "交易", "TRADE_SUCCESS", "TRADE_FINISHED"})
REFUNDED_WORDS = frozenset({"SUCCESS", "退款", "REFUND_SUCCESS"})
# Refunds a query can still move to succeeded (payments.states.REFUND_MOVES).
_REFUND_SETTLEABLE = frozenset(
    {RefundStatus.pending, RefundStatus.processing, RefundStatus.abnormal}
)


class Kind(StrEnum):
    missing_here = "missing_here"  # the channel has it, we have no row
    missing_at_channel = "missing_at_channel"  # we hold it paid/succeeded that day, it does not
    amount_mismatch = "amount_mismatch"
    status_mismatch = "status_mismatch"


@dataclass(frozen=True)
class OurPayment:
    out_trade_no: str
    order_id: int
    status: AttemptStatus
    amount_fen: int
    on_day: bool  # this account's, paid during the day: the statement must list it


@dataclass(frozen=True)
class OurRefund:
    out_refund_no: str
    refund_id: int
    order_id: int
    status: RefundStatus
    amount_fen: int
    on_day: bool  # of this account's attempts, succeeded during the day


@dataclass(frozen=True)
class Books:
    payments: Mapping[str, OurPayment]
    refunds: Mapping[str, OurRefund]


@dataclass(frozen=True)
class Finding:
    kind: Kind
    reference: str  # out_trade_no or out_refund_no
    order_id: int | None = None
    our_state: str = ""
    channel_state: str = ""
    our_amount_fen: int | None = None
    channel_amount_fen: int | None = None
    detail: str = ""
    settle_payment: str | None = None  # query this out_trade_no
    settle_refund: int | None = None  # ask about this refund (by id)


def _payment_findings(line: StatementLine, ours: OurPayment | None) -> list[Finding]:
    base = Finding(
        Kind.missing_here,
        line.out_trade_no,
        channel_state=line.channel_state,
        channel_amount_fen=line.amount_fen,
        detail="the channel has a payment we hold no attempt for",
    )
    if ours is None:
        return [base]
    base = replace(
        base, order_id=ours.order_id, our_state=ours.status.value, our_amount_fen=ours.amount_fen
    )
    found: list[Finding] = []
    agree = line.amount_fen == ours.amount_fen
    if not agree:
        found.append(replace(base, kind=Kind.amount_mismatch, detail="amounts differ"))
    paid_there, paid_here = line.channel_state in PAID_WORDS, ours.status is AttemptStatus.paid
    if paid_there and not paid_here:
        found.append(
            replace(base, kind=Kind.status_mismatch, detail="amounts differ: left for people")
            if not agree
            else replace(
                base, kind=Kind.status_mismatch, detail="", settle_payment=ours.out_trade_no
            )
        )
    elif paid_here and not paid_there:
        found.append(
            replace(base, kind=Kind.status_mismatch, detail="paid here, not at the channel")
        )
    return found


def _refund_findings(line: StatementLine, ours: OurRefund | None) -> list[Finding]:
    base = Finding(
        Kind.missing_here,
        line.out_refund_no or f"{line.out_trade_no}:refund",
        channel_state=line.channel_state,
        channel_amount_fen=line.amount_fen,
        detail=f"the channel has a refund of {line.out_trade_no} we hold no row for",
    )
    if ours is None:
        return [base]
    base = replace(
        base, order_id=ours.order_id, our_state=ours.status.value, our_amount_fen=ours.amount_fen
    )
    found: list[Finding] = []
    agree = line.amount_fen == ours.amount_fen
    if not agree:
        found.append(replace(base, kind=Kind.amount_mismatch, detail="amounts differ"))
    done_there = line.channel_state in REFUNDED_WORDS
    done_here = ours.status is RefundStatus.succeeded
    if done_there and not done_here:
        settleable = agree and ours.status in _REFUND_SETTLEABLE
        found.append(
            replace(
                base,
                kind=Kind.status_mismatch,
                detail="" if settleable else f"{ours.status.value} here: left for people",
                settle_refund=ours.refund_id if settleable else None,
            )
        )
    elif done_here and not done_there:
        found.append(
            replace(base, kind=Kind.status_mismatch, detail="succeeded here, not at the channel")
        )
    return found


def match(lines: Sequence[StatementLine], books: Books) -> tuple[int, list[Finding]]:
    """(lines that matched our books, every difference found)."""
    matched, findings = 0, []
    listed_payments: set[str] = set()
    listed_refunds: set[str] = set()
    for line in lines:
        if line.kind == "refund":
            listed_refunds.add(line.out_refund_no or "")
            found = _refund_findings(line, books.refunds.get(line.out_refund_no or ""))
        else:
            listed_payments.add(line.out_trade_no)
            found = _payment_findings(line, books.payments.get(line.out_trade_no))
        matched += not found
        findings += found
    for payment in books.payments.values():
        if payment.on_day and payment.out_trade_no not in listed_payments:
            findings.append(
                Finding(
                    Kind.missing_at_channel,
                    payment.out_trade_no,
                    order_id=payment.order_id,
                    our_state=payment.status.value,
                    our_amount_fen=payment.amount_fen,
                    detail="paid here that day; the statement does not list it",
                )
            )
    for refund in books.refunds.values():
        if refund.on_day and refund.out_refund_no not in listed_refunds:
            findings.append(
                Finding(
                    Kind.missing_at_channel,
                    refund.out_refund_no,
                    order_id=refund.order_id,
                    our_state=refund.status.value,
                    our_amount_fen=refund.amount_fen,
                    detail="refunded here that day; the statement does not list it",
                )
            )
    return matched, findings
