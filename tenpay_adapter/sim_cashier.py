"""The buyer's side of the simulator: a cashier page standing in for WeChat's payment sheet.

`GET /sim/cashier?prepay_id=…&redirect=…` (or `code_url=…` for a NATIVE order) shows the
merchant, the description and the amount; its buttons (`#pay`, `#decline`) post to
`/sim/cashier/pay` and `/sim/cashier/decline`, which settle the trade, send the notify and
303 back to `redirect`, as the WeChat browser returns to the merchant's page. The redirect must
be a loopback URL: this is a local tool, not an open redirector.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates

from tenpay_adapter.bill import fen_to_yuan
from tenpay_adapter.sim_ledger import Trade, TradeRefusedError
from tenpay_adapter.sim_messages import STATE_DESCRIPTIONS
from tenpay_adapter.sim_state import TenpaySimState

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
PAGE_HEADERS = {"Cache-Control": "no-store"}

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
router = APIRouter()


def _sim(request: Request) -> TenpaySimState:
    state: TenpaySimState = request.app.state.sim
    return state


def loopback_redirect(url: str) -> bool:
    """http://127.0.0.1… or http://localhost… only. Parsed, not prefix-matched: a prefix test
    would pass http://127.0.0.1.evil.example and http://localhost@evil.example."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and not parts.username


def _page(
    request: Request,
    trade: Trade,
    *,
    redirect: str,
    message: str = "",
    message_ok: bool = False,
    status_code: int = 200,
) -> Response:
    sim = _sim(request)
    context = {
        "merchant_name": sim.config.merchant_name,
        "description": trade.request.description,
        "amount_yuan": fen_to_yuan(trade.amount_fen),
        "out_trade_no": trade.out_trade_no,
        "state_desc": STATE_DESCRIPTIONS[trade.state],
        "payable": trade.payable_at(sim.now()),
        "prepay_id": trade.prepay_id,
        "redirect": redirect,
        "message": message,
        "message_ok": message_ok,
    }
    return templates.TemplateResponse(
        request, "tenpay_sim/cashier.html", context, status_code=status_code, headers=PAGE_HEADERS
    )


def _problem(text: str, status_code: int) -> Response:
    return Response(text, status_code=status_code, media_type="text/plain; charset=utf-8")


@router.get("/sim/cashier")
async def get_cashier(request: Request) -> Response:
    query = request.query_params
    redirect = query.get("redirect", "")
    if redirect and not loopback_redirect(redirect):
        return _problem("redirect 只能指向 http://127.0.0.1 或 http://localhost", 400)
    trade = _sim(request).ledger.find_for_cashier(
        prepay_id=query.get("prepay_id"), code_url=query.get("code_url")
    )
    if trade is None:
        return _problem("订单不存在（prepay_id 或 code_url 无效）", 404)
    message = "" if trade.payable_at(_sim(request).now()) else "该订单当前不可支付"
    return _page(request, trade, redirect=redirect, message=message)


async def _settle(request: Request, *, pay: bool) -> Response:
    sim = _sim(request)
    form = await request.form()
    prepay_id, redirect = str(form.get("prepay_id", "")), str(form.get("redirect", ""))
    if redirect and not loopback_redirect(redirect):
        return _problem("redirect 只能指向 http://127.0.0.1 或 http://localhost", 400)
    trade = sim.ledger.find_for_cashier(prepay_id=prepay_id, code_url=None)
    if trade is None:
        return _problem("订单不存在（prepay_id 无效）", 404)
    try:
        settled = sim.pay(trade.out_trade_no) if pay else sim.decline(trade.out_trade_no)
    except TradeRefusedError:
        return _page(
            request, trade, redirect=redirect, message="该订单当前不可支付", status_code=409
        )
    if redirect:
        return RedirectResponse(redirect, status_code=303)
    message = "支付成功" if pay else "支付失败"
    return _page(request, settled, redirect="", message=message, message_ok=pay)


@router.post("/sim/cashier/pay")
async def post_cashier_pay(request: Request) -> Response:
    return await _settle(request, pay=True)


@router.post("/sim/cashier/decline")
async def post_cashier_decline(request: Request) -> Response:
    return await _settle(request, pay=False)
