"""What a trade or a refund looks like on the wire, shared by the simulator's answers and its
notifies: the v3 transaction/refund JSON (spec §2.3, §2.4), the v2 field sets (§1.5, §1.8,
§1.9), the v3 signed headers (§2.2) and the encrypted notify envelope (§2.3).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime
from typing import Any

from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_ledger import Refund, Trade, TradeState
from tenpay_adapter.timefmt import format_beijing_compact, format_beijing_dashed
from tenpay_adapter.v2_signing import SIGN_HMAC, SIGN_MD5, encrypt_req_info, nonce_str, sign_v2
from tenpay_adapter.v3_signing import (
    AUTH_SCHEME,
    SIGNTEST_PREFIX,
    aes_gcm_encrypt,
    format_rfc3339_beijing,
    sign_response,
)

STATE_DESCRIPTIONS: dict[str, str] = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "未支付",
    "CLOSED": "已关闭",
    "USERPAYING": "用户支付中",
    "PAYERROR": "支付失败",
}
REFUND_ACCOUNT = "支付用户零钱"
_NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def compact_json(value: object) -> bytes:
    # What is signed is what is sent (spec §2.2): serialise once, sign these bytes.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _random_text(length: int) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def _shown(trade: Trade) -> tuple[TradeState, bool]:
    """The state a query reports and whether the payment details may be shown with it."""
    state = trade.shown_state()
    return state, state in ("SUCCESS", "REFUND") and trade.paid_at is not None


# -- v3 ----------------------------------------------------------------------------------------


def transaction_json(config: TenpaySimConfig, trade: Trade) -> dict[str, Any]:
    """The transaction object of a v3 query and of a TRANSACTION.SUCCESS notify (spec §2.3)."""
    state, paid = _shown(trade)
    body: dict[str, Any] = {
        "appid": config.appid,
        "mchid": config.mchid,
        "out_trade_no": trade.out_trade_no,
        "trade_type": trade.request.trade_type,
        "trade_state": state,
        "trade_state_desc": STATE_DESCRIPTIONS[state],
        "attach": trade.request.attach,
        "amount": {"total": trade.amount_fen, "currency": "CNY", "payer_currency": "CNY"},
    }
    openid = trade.payer_openid or trade.request.openid
    if openid:
        body["payer"] = {"openid": openid}
    if paid and trade.paid_at is not None:
        body["transaction_id"] = trade.transaction_id
        body["bank_type"] = config.bank_type
        body["success_time"] = format_rfc3339_beijing(trade.paid_at)
        body["amount"]["payer_total"] = trade.amount_fen
    return body


def refund_json(refund: Refund, *, trade_total_fen: int) -> dict[str, Any]:
    """The refund object of the v3 refund answer and query (spec §2.4)."""
    body: dict[str, Any] = {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": refund.transaction_id,
        "out_trade_no": refund.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": REFUND_ACCOUNT,
        "create_time": format_rfc3339_beijing(refund.created_at),
        "status": refund.state,
        "funds_account": "AVAILABLE",
        "amount": {
            "total": trade_total_fen,
            "refund": refund.amount_fen,
            "payer_total": trade_total_fen,
            "payer_refund": refund.amount_fen,
            "settlement_refund": refund.amount_fen,
            "settlement_total": trade_total_fen,
            "discount_refund": 0,
            "currency": "CNY",
        },
    }
    if refund.success_at is not None:
        body["success_time"] = format_rfc3339_beijing(refund.success_at)
    return body


def refund_notify_json(config: TenpaySimConfig, refund: Refund, trade: Trade) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mchid": config.mchid,
        "out_trade_no": refund.out_trade_no,
        "transaction_id": refund.transaction_id,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_status": refund.state,
        "user_received_account": REFUND_ACCOUNT,
        "amount": {
            "total": trade.amount_fen,
            "refund": refund.amount_fen,
            "payer_total": trade.amount_fen,
            "payer_refund": refund.amount_fen,
        },
    }
    if refund.success_at is not None:
        body["success_time"] = format_rfc3339_beijing(refund.success_at)
    return body


def v3_notify_body(
    config: TenpaySimConfig, *, kind: str, resource: dict[str, Any], created_at: datetime
) -> tuple[str, bytes]:
    """(event id, body) of an encrypted v3 notify; kind is "transaction" or "refund"."""
    event_id = f"EV-{format_beijing_compact(created_at)}{secrets.randbelow(10**10):010d}"
    nonce = _random_text(12)
    plaintext = compact_json(resource)
    ciphertext = aes_gcm_encrypt(
        apiv3_key=config.apiv3_key, nonce=nonce, plaintext=plaintext, associated_data=kind
    )
    payment = kind == "transaction"
    envelope = {
        "id": event_id,
        "create_time": format_rfc3339_beijing(created_at),
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS" if payment else f"REFUND.{resource['refund_status']}",
        "summary": "支付成功" if payment else "退款成功",
        "resource": {
            "original_type": kind,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": kind,
            "nonce": nonce,
        },
    }
    return event_id, compact_json(envelope)


def v3_signed_headers(
    config: TenpaySimConfig,
    body: bytes,
    *,
    timestamp: int | None = None,
    bad_signature: bool = False,
    probe: bool = False,
) -> dict[str, str]:
    """The Wechatpay-* headers of an answer or a notify (spec §2.2), real wall-clock time."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    nonce = secrets.token_hex(16)
    if probe:
        # A signature probe (spec §2.2): it must fail verification and be answered non-2xx.
        signature = SIGNTEST_PREFIX + secrets.token_urlsafe(256)
    else:
        signed_body = body + b" " if bad_signature else body  # valid base64, wrong message
        signature = sign_response(
            private_key=config.platform_private_key, timestamp=stamp, nonce=nonce, body=signed_body
        )
    return {
        "Wechatpay-Timestamp": stamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": config.wechatpay_serial,
        "Wechatpay-Signature-Type": AUTH_SCHEME,
    }


# -- v2 ----------------------------------------------------------------------------------------


def v2_trade_fields(config: TenpaySimConfig, trade: Trade) -> dict[str, str]:
    """The trade as orderquery shows it (spec §1.5); the payment details only once paid."""
    state, paid = _shown(trade)
    fields = {
        "out_trade_no": trade.out_trade_no,
        "trade_state": state,
        "trade_state_desc": STATE_DESCRIPTIONS[state],
        "trade_type": trade.request.trade_type,
        "total_fee": str(trade.amount_fen),
        "fee_type": "CNY",
        "attach": trade.request.attach,
    }
    if paid and trade.paid_at is not None:
        fields |= {
            "openid": trade.payer_openid or "",
            "is_subscribe": "N",
            "bank_type": config.bank_type,
            "cash_fee": str(trade.amount_fen),
            "cash_fee_type": "CNY",
            "transaction_id": trade.transaction_id or "",
            "time_end": format_beijing_compact(trade.paid_at),
        }
    return fields


def v2_payment_notify(
    config: TenpaySimConfig, trade: Trade, *, bad_signature: bool = False
) -> dict[str, str]:
    """The signed payment notify (spec §1.9). MD5 orders get no sign_type (as the vectors
    show); HMAC orders name it unless the config asks for the §6 quirk of leaving it out."""
    assert trade.paid_at is not None  # only paid trades are notified
    sign_type = trade.request.sign_type
    fields = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": config.appid,
        "mch_id": config.mchid,
        "nonce_str": nonce_str(),
        "result_code": "SUCCESS",
        "openid": trade.payer_openid or "",
        "is_subscribe": "N",
        "trade_type": trade.request.trade_type,
        "bank_type": config.bank_type,
        "total_fee": str(trade.amount_fen),
        "fee_type": "CNY",
        "cash_fee": str(trade.amount_fen),
        "transaction_id": trade.transaction_id or "",
        "out_trade_no": trade.out_trade_no,
        "attach": trade.request.attach,
        "time_end": format_beijing_compact(trade.paid_at),
    }
    if sign_type == SIGN_HMAC and not config.v2_notify_omits_hmac_sign_type:
        fields["sign_type"] = SIGN_HMAC
    sign = sign_v2(fields, config.api_key, sign_type if sign_type == SIGN_HMAC else SIGN_MD5)
    if bad_signature:
        sign = sign[1:] + ("0" if sign[0] != "0" else "1")
    return fields | {"sign": sign}


def v2_refund_fields(refund: Refund, trade: Trade) -> dict[str, str]:
    """The decrypted `req_info` of a refund notify (spec §1.9, vector refund_notify_req_info)."""
    fields = {
        "out_refund_no": refund.out_refund_no,
        "out_trade_no": refund.out_trade_no,
        "refund_fee": str(refund.amount_fen),
        "refund_id": refund.refund_id,
        "refund_recv_accout": REFUND_ACCOUNT,  # sic: the API spells it so (spec §1.9)
        "refund_request_source": "API",
        "refund_status": refund.state,
        "settlement_refund_fee": str(refund.amount_fen),
        "settlement_total_fee": str(trade.amount_fen),
        "total_fee": str(trade.amount_fen),
        "transaction_id": refund.transaction_id,
    }
    if refund.success_at is not None:
        fields["success_time"] = format_beijing_dashed(refund.success_at)
    return fields


def v2_refund_notify(config: TenpaySimConfig, refund: Refund, trade: Trade) -> dict[str, str]:
    """The refund notify: `req_info` encrypted, and no sign at all (spec §1.9)."""
    return {
        "return_code": "SUCCESS",
        "appid": config.appid,
        "mch_id": config.mchid,
        "nonce_str": nonce_str(),
        "req_info": encrypt_req_info(v2_refund_fields(refund, trade), config.api_key),
    }
