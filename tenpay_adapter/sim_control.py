"""The simulator's own JSON routes, for tests without a browser and for a developer at a shell:
pay or decline a trade, read it, switch faults on, move the clock, read the notify deliveries,
reset. Errors use the house shape `{"error", "detail"}` (these are not WeChat's routes).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tenpay_adapter.sim_ledger import Refusal, Trade, TradeRefusedError, TradeState
from tenpay_adapter.sim_state import FaultEndpoint, FaultMode, TenpaySimState

router = APIRouter()


class PayIn(BaseModel):
    openid: str | None = Field(default=None, min_length=1, max_length=128)


class FaultIn(BaseModel):
    endpoint: FaultEndpoint = "*"
    mode: FaultMode
    count: int = Field(default=1, ge=1)
    delay_s: float | None = Field(default=None, ge=0, le=600)
    masked_state: TradeState = "NOTPAY"


class ClockIn(BaseModel):
    advance_s: float = Field(ge=0)


def _sim(request: Request) -> TenpaySimState:
    state: TenpaySimState = request.app.state.sim
    return state


def trade_view(trade: Trade) -> dict[str, Any]:
    """The trade as the simulator knows it: the true state next to what queries show."""
    return {
        "out_trade_no": trade.out_trade_no,
        "api_version": trade.request.api_version,
        "trade_type": trade.request.trade_type,
        "state": trade.state,
        "shown_state": trade.shown_state(),
        "amount_fen": trade.amount_fen,
        "prepay_id": trade.prepay_id,
        "code_url": trade.code_url,
        "transaction_id": trade.transaction_id,
        "payer_openid": trade.payer_openid,
        "created_at": trade.created_at.isoformat(),
        "paid_at": trade.paid_at.isoformat() if trade.paid_at else None,
        "refunded_fen": trade.refunded_fen,
        "refund_count": trade.refund_count,
    }


def _refused(refusal: Refusal) -> JSONResponse:
    status = 404 if refusal is Refusal.ORDER_NOT_EXIST else 409
    return JSONResponse({"error": refusal.value, "detail": "the trade cannot do that"}, status)


@router.get("/sim/trades/{out_trade_no}")
def get_trade(out_trade_no: str, request: Request) -> JSONResponse:
    trade = _sim(request).ledger.find(out_trade_no=out_trade_no)
    if trade is None:
        return _refused(Refusal.ORDER_NOT_EXIST)
    return JSONResponse(trade_view(trade))


@router.post("/sim/trades/{out_trade_no}/pay")
def pay_trade(out_trade_no: str, request: Request, body: PayIn | None = None) -> JSONResponse:
    try:
        trade = _sim(request).pay(out_trade_no, openid=body.openid if body else None)
    except TradeRefusedError as refused:
        return _refused(refused.refusal)
    return JSONResponse(trade_view(trade))


@router.post("/sim/trades/{out_trade_no}/decline")
def decline_trade(out_trade_no: str, request: Request) -> JSONResponse:
    try:
        trade = _sim(request).decline(out_trade_no)
    except TradeRefusedError as refused:
        return _refused(refused.refusal)
    return JSONResponse(trade_view(trade))


@router.post("/sim/faults", status_code=204)
def add_fault(body: FaultIn, request: Request) -> None:
    _sim(request).add_fault(
        body.endpoint,
        body.mode,
        count=body.count,
        delay_s=body.delay_s,
        masked_state=body.masked_state,
    )


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
