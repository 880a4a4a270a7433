"""WeChat Pay API v3 on loopback (spec §2): JSAPI and NATIVE orders, queries, close, refunds,
platform certificates and trade bills, with v3's JSON, RSA signatures and status codes.

Every route: `admitted` (Authorization, request faults) → the effect on the ledger → a signed
answer, delayed by a `timeout` fault *after* the effect.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import date
from typing import Any

from cryptography import x509
from fastapi import APIRouter, Request, Response

from tenpay_adapter.sim_bill import BILL_TYPES, bill_text
from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_ledger import OrderRequest, RefundRequest, Refusal, TradeRefusedError
from tenpay_adapter.sim_messages import refund_json, transaction_json
from tenpay_adapter.sim_v3_http import (
    V3Error,
    admitted,
    after_effect,
    amount_fen,
    check_authorization,
    check_mchid,
    error_answer,
    json_object,
    required_str,
    signed_answer,
    sim_of,
)
from tenpay_adapter.v3_signing import aes_gcm_encrypt, format_rfc3339_beijing, parse_rfc3339

_OUT_NO_RE = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
_OUT_REFUND_NO_RE = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
_NOT_FOUND = V3Error(404, "ORDER_NOT_EXIST", "订单不存在")

router = APIRouter()


def _refusal_error(config: TenpaySimConfig, refusal: Refusal) -> V3Error:
    if refusal is Refusal.OUT_TRADE_NO_USED:
        # spec §1.3/§2.4: the live form first, the documented one when configured.
        if config.duplicate_order_form == "OUT_TRADE_NO_USED":
            return V3Error(403, "OUT_TRADE_NO_USED", "商户订单号重复")
        return V3Error(400, "INVALID_REQUEST", "201 商户订单号重复")
    errors = {
        Refusal.ORDER_NOT_EXIST: _NOT_FOUND,
        Refusal.ORDER_PAID: V3Error(400, "ORDERPAID", "订单已支付"),
        Refusal.ORDER_CLOSED: V3Error(400, "ORDER_CLOSED", "订单已关闭"),
        Refusal.NOT_PAID: V3Error(403, "TRADE_ERROR", "订单未支付，不能退款"),
        Refusal.TOTAL_FEE_MISMATCH: V3Error(400, "PARAM_ERROR", "订单金额与原订单不一致"),
        Refusal.REFUND_FEE_MISMATCH: V3Error(
            400, "INVALID_REQUEST", "订单金额或退款金额与之前请求不一致，请核实后再试"
        ),
        Refusal.REFUND_EXCEEDS_PAID: V3Error(
            400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"
        ),
        Refusal.TOO_MANY_REFUNDS: V3Error(403, "TRADE_ERROR", "订单已超过可退款的最大次数"),
        Refusal.REFUND_NOT_EXIST: V3Error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"),
    }
    return errors.get(refusal, V3Error(403, "TRADE_ERROR", refusal.value))


def _order_request(config: TenpaySimConfig, body: dict[str, Any], trade_type: str) -> OrderRequest:
    if required_str(body, "appid") != config.appid:
        raise V3Error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    check_mchid(config, required_str(body, "mchid"))
    out_trade_no = required_str(body, "out_trade_no", max_len=32)
    if not _OUT_NO_RE.fullmatch(out_trade_no):
        raise V3Error(400, "PARAM_ERROR", "out_trade_no 只能是 6-32 位数字、大小写字母_-|*")
    notify_url = required_str(body, "notify_url")
    if "?" in notify_url or not notify_url.startswith(("http://", "https://")):
        raise V3Error(400, "PARAM_ERROR", "notify_url 必须是不带参数的 http(s) 地址")
    amount = body.get("amount")
    if not isinstance(amount, dict) or amount.get("currency", "CNY") != "CNY":
        raise V3Error(400, "PARAM_ERROR", "amount 必填，currency 只能是 CNY")
    payer = body.get("payer")
    openid = payer.get("openid") if isinstance(payer, dict) else None
    if trade_type == "JSAPI" and (not isinstance(openid, str) or not openid):
        raise V3Error(
            400, "PARAM_ERROR", "输入源“/body/payer/openid”必填性规则校验失败，此字段为必填项"
        )
    time_expire = body.get("time_expire")
    try:
        expire_at = parse_rfc3339(time_expire) if isinstance(time_expire, str) else None
    except ValueError:
        raise V3Error(400, "PARAM_ERROR", "time_expire 不是 RFC 3339 时间") from None
    attach = body.get("attach", "")
    return OrderRequest(
        api_version="v3",
        out_trade_no=out_trade_no,
        fingerprint=json.dumps(body, sort_keys=True, ensure_ascii=False),
        trade_type=trade_type,
        amount_fen=amount_fen(amount.get("total"), "amount/total"),
        description=required_str(body, "description", max_len=127),
        notify_url=notify_url,
        attach=attach if isinstance(attach, str) else "",
        openid=openid if isinstance(openid, str) and openid else None,
        time_expire=expire_at,
    )


async def _place_order(request: Request, trade_type: str) -> Response:
    sim = sim_of(request)
    admission = await admitted(request, "order")
    if isinstance(admission, Response):
        return admission
    body, fault = admission
    try:
        trade = sim.ledger.place_order(_order_request(sim.config, json_object(body), trade_type))
    except V3Error as error:
        return error_answer(sim.config, error)
    except TradeRefusedError as refused:
        return error_answer(sim.config, _refusal_error(sim.config, refused.refusal))
    native = trade_type == "NATIVE"
    payload = {"code_url": trade.code_url} if native else {"prepay_id": trade.prepay_id}
    return await after_effect(sim, fault, signed_answer(sim.config, 200, payload))


@router.post("/v3/pay/transactions/jsapi")
async def post_jsapi(request: Request) -> Response:
    return await _place_order(request, "JSAPI")


@router.post("/v3/pay/transactions/native")
async def post_native(request: Request) -> Response:
    return await _place_order(request, "NATIVE")


async def _query(
    request: Request, *, out_trade_no: str | None, transaction_id: str | None
) -> Response:
    sim = sim_of(request)
    admission = await admitted(request, "query")
    if isinstance(admission, Response):
        return admission
    _body, fault = admission
    try:
        check_mchid(sim.config, request.query_params.get("mchid"))
        trade = sim.ledger.find(out_trade_no=out_trade_no, transaction_id=transaction_id)
        # Before payment a trade has no transaction_id; while masked it is not shown either.
        if trade is None or (transaction_id and trade.shown_state() not in ("SUCCESS", "REFUND")):
            raise _NOT_FOUND
    except V3Error as error:
        return error_answer(sim.config, error)
    answer = signed_answer(sim.config, 200, transaction_json(sim.config, trade))
    return await after_effect(sim, fault, answer)


@router.get("/v3/pay/transactions/out-trade-no/{out_trade_no}")
async def get_by_out_trade_no(request: Request, out_trade_no: str) -> Response:
    return await _query(request, out_trade_no=out_trade_no, transaction_id=None)


@router.get("/v3/pay/transactions/id/{transaction_id}")
async def get_by_transaction_id(request: Request, transaction_id: str) -> Response:
    return await _query(request, out_trade_no=None, transaction_id=transaction_id)


@router.post("/v3/pay/transactions/out-trade-no/{out_trade_no}/close")
async def post_close(request: Request, out_trade_no: str) -> Response:
    sim = sim_of(request)
    admission = await admitted(request, "close")
    if isinstance(admission, Response):
        return admission
    body, fault = admission
    try:
        check_mchid(sim.config, json_object(body).get("mchid"))
        # The 5-minute rule is a v2 one (spec §1.6); v3 closes at once.
        sim.ledger.close(out_trade_no, min_age_s=0)
    except V3Error as error:
        return error_answer(sim.config, error)
    except TradeRefusedError as refused:
        if refused.refusal is not Refusal.ORDER_CLOSED:  # closing twice is still a 204
            return error_answer(sim.config, _refusal_error(sim.config, refused.refusal))
    return await after_effect(sim, fault, signed_answer(sim.config, 204))


def _refund_request(config: TenpaySimConfig, body: dict[str, Any]) -> RefundRequest:
    out_refund_no = required_str(body, "out_refund_no", max_len=64)
    if not _OUT_REFUND_NO_RE.fullmatch(out_refund_no):
        raise V3Error(400, "PARAM_ERROR", "out_refund_no 格式错误")
    transaction_id, out_trade_no = body.get("transaction_id"), body.get("out_trade_no")
    if not (isinstance(transaction_id, str) and transaction_id) and not (
        isinstance(out_trade_no, str) and out_trade_no
    ):
        raise V3Error(400, "PARAM_ERROR", "transaction_id 和 out_trade_no 必须二选一")
    amount = body.get("amount")
    if not isinstance(amount, dict) or amount.get("currency", "CNY") != "CNY":
        raise V3Error(400, "PARAM_ERROR", "amount 必填，currency 只能是 CNY")
    notify_url = body.get("notify_url")
    reason = body.get("reason", "")
    return RefundRequest(
        api_version="v3",
        out_refund_no=out_refund_no,
        out_trade_no=out_trade_no if isinstance(out_trade_no, str) and out_trade_no else None,
        transaction_id=transaction_id if isinstance(transaction_id, str) else None,
        total_fen=amount_fen(amount.get("total"), "amount/total"),
        refund_fen=amount_fen(amount.get("refund"), "amount/refund"),
        reason=reason if isinstance(reason, str) else "",
        notify_url=notify_url if isinstance(notify_url, str) and notify_url else None,
    )


@router.post("/v3/refund/domestic/refunds")
async def post_refund(request: Request) -> Response:
    sim = sim_of(request)
    admission = await admitted(request, "refund")
    if isinstance(admission, Response):
        return admission
    body, fault = admission
    try:
        refund_request = _refund_request(sim.config, json_object(body))
        refund, new = sim.ledger.refund(refund_request, settle_after_s=sim.config.refund_settle_s)
    except V3Error as error:
        return error_answer(sim.config, error)
    except TradeRefusedError as refused:
        return error_answer(sim.config, _refusal_error(sim.config, refused.refusal))
    if new:
        sim.refund_accepted(refund)
    payload = refund_json(refund, trade_total_fen=refund.request.total_fen)
    return await after_effect(sim, fault, signed_answer(sim.config, 200, payload))


@router.get("/v3/refund/domestic/refunds/{out_refund_no}")
async def get_refund(request: Request, out_refund_no: str) -> Response:
    sim = sim_of(request)
    admission = await admitted(request, "refund_query")
    if isinstance(admission, Response):
        return admission
    _body, fault = admission
    refund = sim.ledger.find_refund(out_refund_no)
    if refund is None:
        return error_answer(sim.config, _refusal_error(sim.config, Refusal.REFUND_NOT_EXIST))
    payload = refund_json(refund, trade_total_fen=refund.request.total_fen)
    return await after_effect(sim, fault, signed_answer(sim.config, 200, payload))


def _certificate_item(config: TenpaySimConfig) -> dict[str, Any]:
    certificate = x509.load_pem_x509_certificate(config.platform_certificate_pem.encode())
    nonce = secrets.token_hex(6)  # 12 ASCII characters, as the GCM nonce must be
    ciphertext = aes_gcm_encrypt(
        apiv3_key=config.apiv3_key,
        nonce=nonce,
        plaintext=config.platform_certificate_pem.encode(),
        associated_data="certificate",
    )
    return {
        "serial_no": config.platform_serial_no,
        "effective_time": format_rfc3339_beijing(certificate.not_valid_before_utc),
        "expire_time": format_rfc3339_beijing(certificate.not_valid_after_utc),
        "encrypt_certificate": {
            "algorithm": "AEAD_AES_256_GCM",
            "nonce": nonce,
            "associated_data": "certificate",
            "ciphertext": ciphertext,
        },
    }


@router.get("/v3/certificates")
async def get_certificates(request: Request) -> Response:
    sim = sim_of(request)
    admission = await admitted(request, "certificates")
    if isinstance(admission, Response):
        return admission
    _body, fault = admission
    answer = signed_answer(sim.config, 200, {"data": [_certificate_item(sim.config)]})
    return await after_effect(sim, fault, answer)


@router.get("/v3/bill/tradebill")
async def get_tradebill(request: Request) -> Response:
    sim = sim_of(request)
    admission = await admitted(request, "bill")
    if isinstance(admission, Response):
        return admission
    _body, fault = admission
    query = request.query_params
    bill_type = query.get("bill_type", "ALL")
    try:
        bill_date = date.fromisoformat(query.get("bill_date", ""))
    except ValueError:
        bill_date = None
    if bill_date is None or bill_type not in BILL_TYPES:
        return error_answer(sim.config, V3Error(400, "PARAM_ERROR", "bill_date 或 bill_type 有误"))
    text = bill_text(sim.config, sim.ledger, bill_date, bill_type)
    if text is None:
        return error_answer(sim.config, V3Error(400, "NO_STATEMENT_EXIST", "账单文件不存在"))
    content = text.encode("utf-8")
    token = sim.keep_bill_file(content)
    payload = {
        "hash_type": "SHA1",
        "hash_value": hashlib.sha1(content).hexdigest(),  # noqa: S324 - the protocol's hash
        "download_url": f"{str(request.base_url).rstrip('/')}/v3/billdownload/file?token={token}",
    }
    return await after_effect(sim, fault, signed_answer(sim.config, 200, payload))


@router.get("/v3/billdownload/file")
async def get_bill_file(request: Request) -> Response:
    """The bill file itself. Its request is signed like any other, but the answer is not: the
    real download answer carries no Wechatpay-Signature and is checked by the tradebill's
    hash_value instead (SDKs skip verification for this one URL)."""
    sim = sim_of(request)
    try:
        check_authorization(sim.config, request, await request.body())
    except V3Error as error:
        return error_answer(sim.config, error)
    content = sim.bill_file(request.query_params.get("token", ""))
    if content is None:
        return error_answer(sim.config, V3Error(404, "RESOURCE_NOT_EXISTS", "账单文件不存在"))
    return Response(content, media_type="text/plain; charset=utf-8")
