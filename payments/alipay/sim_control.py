"""The simulator's own JSON routes, for tests without a browser and for a developer at a shell:
scan, pay, decline or finish a trade, read it, switch faults on, move the clock, read the
notify deliveries, reset. Errors use the house shape `{"error", "detail"}` (these are not
Alipay's routes).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from payments.alipay.sim_state import AlipaySimState, FaultEndpoint, FaultMode
from payments.alipay.sim_trades import Refusal, Trade, TradeRefusedError

router = APIRouter()


class BuyerIn(BaseModel):
    buyer_id: str | None = Field(default=None, pattern=r"^2088[0-9]{12}$")


class FaultIn(BaseModel):
    endpoint: FaultEndpoint = "*"
    mode: FaultMode
    count: int = Field(default=1, ge=1)
    delay_s: float | None = Field(default=None, ge=0, le=600)


class ClockIn(BaseModel):
    advance_s: float = Field(ge=0)


def _sim(request: Request) -> AlipaySimState:
    state: AlipaySimState = request.app.state.sim
    return state


def trade_view(trade: Trade) -> dict[str, Any]:
    """The trade as the simulator knows it: the true status next to what queries show."""

    def stamp(moment: Any) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "out_trade_no": trade.out_trade_no,
        "product": trade.product,
        "scanned": trade.scanned,
        "status": trade.status,
        "shown_status": trade.shown_status(),
        "amount_fen": trade.amount_fen,
        "subject": trade.request.subject,
        "qr_code": trade.qr_code,
        "trade_no": trade.trade_no or None,
        "buyer_id": trade.buyer_id,
        "notify_url": trade.request.notify_url or None,
        "created_at": stamp(trade.created_at),
        "paid_at": stamp(trade.paid_at),
        "closed_at": stamp(trade.closed_at),
        "refunded_fen": trade.refunded_fen,
    }


def _refused(refusal: Refusal) -> JSONResponse:
    status = 404 if refusal is Refusal.TRADE_NOT_EXIST else 409
    return JSONResponse({"error": refusal.value, "detail": "the trade cannot do that"}, status)


@router.get("/sim/trades/{out_trade_no}")
def get_trade(out_trade_no: str, request: Request) -> JSONResponse:
    trade = _sim(request).ledger.find(out_trade_no=out_trade_no, hidden=True)
    if trade is None:
        return _refused(Refusal.TRADE_NOT_EXIST)
    return JSONResponse(trade_view(trade))


def _act(request: Request, out_trade_no: str, action: str, buyer: BuyerIn | None) -> JSONResponse:
    sim = _sim(request)
    buyer_id = buyer.buyer_id if buyer is not None else None
    try:
        if action == "scan":
            trade = sim.scan(out_trade_no, buyer_id=buyer_id)
        elif action == "pay":
            trade = sim.pay(out_trade_no, buyer_id=buyer_id)
        elif action == "decline":
            trade = sim.decline(out_trade_no)
        else:
            trade = sim.finish(out_trade_no)
    except TradeRefusedError as refused:
        return _refused(refused.refusal)
    return JSONResponse(trade_view(trade))


@router.post("/sim/trades/{out_trade_no}/scan")
def scan_trade(out_trade_no: str, request: Request, body: BuyerIn | None = None) -> JSONResponse:
    """A precreate trade comes into existence (WAIT_BUYER_PAY)."""
    return _act(request, out_trade_no, "scan", body)


@router.post("/sim/trades/{out_trade_no}/pay")
def pay_trade(out_trade_no: str, request: Request, body: BuyerIn | None = None) -> JSONResponse:
    return _act(request, out_trade_no, "pay", body)


@router.post("/sim/trades/{out_trade_no}/decline")
def decline_trade(out_trade_no: str, request: Request) -> JSONResponse:
    return _act(request, out_trade_no, "decline", None)


@router.post("/sim/trades/{out_trade_no}/finish")
def finish_trade(out_trade_no: str, request: Request) -> JSONResponse:
    """TRADE_SUCCESS → TRADE_FINISHED (the refund window passed)."""
    return _act(request, out_trade_no, "finish", None)


@router.post("/sim/faults", status_code=204)
def add_fault(body: FaultIn, request: Request) -> None:
    _sim(request).add_fault(body.endpoint, body.mode, count=body.count, delay_s=body.delay_s)


@router.post("/sim/clock", status_code=204)
def advance_clock(body: ClockIn, request: Request) -> None:
    _sim(request).advance_clock(body.advance_s)


@router.get("/sim/deliveries")
def deliveries(request: Request) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = _sim(request).stats()["deliveries"]
    return found


@router.get("/sim/stats")
def stats(request: Request) -> dict[str, Any]:
    return _sim(request).stats()


@router.post("/sim/reset", status_code=204)
def reset(request: Request) -> None:
    _sim(request).reset()
