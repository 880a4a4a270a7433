"""The buyer's side of the simulator: a cashier page standing in for Alipay's.

Page and wap pay show it straight from `/gateway.do`. Otherwise `GET /sim/cashier?out_trade_no=…`
(or `qr_code=…`, for a precreate QR code: opening it is the buyer scanning it) with an optional
`return_url`. Its buttons (`#pay`, `#decline`) post to `/sim/cashier/pay` and
`/sim/cashier/decline`, which settle the trade, send the notifies and 303 back to `return_url`:
after a page/wap payment with Alipay's signed return parameters appended (out_trade_no,
trade_no, total_amount, seller_id, … signed like a notify). The return URL must be loopback
(http://127.0.0.1 or http://localhost): a local tool, not an open redirector.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates

from payments.alipay.signing import yuan
from payments.alipay.sim_messages import STATUS_DESCRIPTIONS, return_params
from payments.alipay.sim_state import AlipaySimState
from payments.alipay.sim_trades import Trade, TradeRefusedError
from payments.alipay.sim_wire import GatewayError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
PAGE_HEADERS = {"Cache-Control": "no-store"}
_PRODUCT_NAMES = {
    "precreate": "当面付（扫码）",
    "create": "当面付（JSAPI）",
    "pay": "当面付（付款码）",
    "wap": "手机网站支付",
    "page": "电脑网站支付",
}
_BAD_RETURN = "return_url 只能指向 http://127.0.0.1 或 http://localhost"

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
router = APIRouter()


def _sim(request: Request) -> AlipaySimState:
    state: AlipaySimState = request.app.state.sim
    return state


def loopback_url(url: str) -> bool:
    """http://127.0.0.1… or http://localhost… only. Parsed, not prefix-matched: a prefix test
    would pass http://127.0.0.1.evil.example and http://localhost@evil.example."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and not parts.username


def cashier_page(
    request: Request,
    trade: Trade,
    *,
    return_url: str,
    message: str = "",
    message_ok: bool = False,
    status_code: int = 200,
) -> Response:
    sim = _sim(request)
    context = {
        "merchant_name": sim.config.merchant_name,
        "subject": trade.request.subject,
        "amount_yuan": yuan(trade.amount_fen),
        "out_trade_no": trade.out_trade_no,
        "product_name": _PRODUCT_NAMES[trade.product],
        "status_desc": STATUS_DESCRIPTIONS[trade.status],
        "payable": trade.status == "WAIT_BUYER_PAY",
        # A page/wap trade's own return_url is used when the form names none.
        "return_url": return_url if loopback_url(return_url) else "",
        "message": message,
        "message_ok": message_ok,
    }
    return templates.TemplateResponse(
        request, "alipay_sim/cashier.html", context, status_code=status_code, headers=PAGE_HEADERS
    )


def gateway_error_page(request: Request, error: GatewayError) -> Response:
    """What a browser sees when a page/wap pay request is refused."""
    context = {"code": error.code, "sub_code": error.sub_code, "sub_msg": error.sub_msg}
    return templates.TemplateResponse(
        request, "alipay_sim/error.html", context, status_code=400, headers=PAGE_HEADERS
    )


def _problem(text: str, status_code: int) -> Response:
    return Response(text, status_code=status_code, media_type="text/plain; charset=utf-8")


@router.get("/sim/cashier")
def get_cashier(request: Request) -> Response:
    sim = _sim(request)
    sim.sweep()
    query = request.query_params
    return_url = query.get("return_url", "")
    if return_url and not loopback_url(return_url):
        return _problem(_BAD_RETURN, 400)
    qr_code = query.get("qr_code", "")
    found = sim.ledger.find_by_qr(qr_code) if qr_code else None
    out_trade_no = found.out_trade_no if found else query.get("out_trade_no", "")
    trade = sim.ledger.find(out_trade_no=out_trade_no, hidden=True) if out_trade_no else None
    if trade is None:
        return _problem("交易不存在（out_trade_no 或 qr_code 无效）", 404)
    if not trade.scanned:
        trade = sim.scan(trade.out_trade_no)  # opening the QR code is scanning it
    message = "" if trade.status == "WAIT_BUYER_PAY" else "该交易当前不可支付"
    return cashier_page(request, trade, return_url=return_url, message=message)


def _back_to(sim: AlipaySimState, trade: Trade, return_url: str, *, paid: bool) -> str:
    if not paid or trade.product not in ("wap", "page"):
        return return_url
    joiner = "&" if "?" in return_url else "?"
    return return_url + joiner + urlencode(return_params(sim.config, trade, sim.now()))


async def _settle(request: Request, *, pay: bool) -> Response:
    sim = _sim(request)
    form = await request.form()
    out_trade_no, return_url = str(form.get("out_trade_no", "")), str(form.get("return_url", ""))
    if return_url and not loopback_url(return_url):
        return _problem(_BAD_RETURN, 400)
    trade = sim.ledger.find(out_trade_no=out_trade_no, hidden=True)
    if trade is None:
        return _problem("交易不存在", 404)
    try:
        settled = sim.pay(out_trade_no) if pay else sim.decline(out_trade_no)
    except TradeRefusedError:
        return cashier_page(
            request, trade, return_url=return_url, message="该交易当前不可支付", status_code=409
        )
    if return_url:
        return RedirectResponse(_back_to(sim, settled, return_url, paid=pay), status_code=303)
    message = "支付成功" if pay else "已取消支付，交易关闭"
    return cashier_page(request, settled, return_url="", message=message, message_ok=pay)


@router.post("/sim/cashier/pay")
async def post_cashier_pay(request: Request) -> Response:
    return await _settle(request, pay=True)


@router.post("/sim/cashier/decline")
async def post_cashier_decline(request: Request) -> Response:
    return await _settle(request, pay=False)
