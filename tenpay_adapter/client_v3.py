"""WeChat Pay API v3 as a `PaymentChannel` (spec §2): JSON over HTTPS, every request signed with
the merchant key, every answer and notify verified with a platform key before a word of it is
believed (§2.2). An answer that does not verify may still stand for a call that took effect, so
it is a ChannelRetryableError: the caller settles it by querying.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx

from payments.channels import (
    ChannelDeclinedError,
    ChannelError,
    ChannelRetryableError,
    Notice,
    NotifyAnswer,
    NotifyRejectedError,
    OrderNumberUsedError,
    PaymentNotice,
    PayMethod,
    Prepay,
    PrepayRequest,
    RefundNotice,
    RefundRequest,
    RefundStatus,
    Statement,
    TradeState,
    TradeStatus,
)
from tenpay_adapter.bill import parse_bill
from tenpay_adapter.client import (
    CLOSED_CODES,
    NOT_FOUND_CODES,
    bad_response,
    reading_answer,
    refund_state,
    statement,
    trade_state,
)
from tenpay_adapter.client_v3_wire import (
    V3Wire,
    fen,
    json_object,
    optional_text,
    rfc3339_time,
    text,
)
from tenpay_adapter.config import TenpayAccount
from tenpay_adapter.errors import TenpayProtocolError
from tenpay_adapter.v3_signing import aes_gcm_decrypt, format_rfc3339_beijing, jsapi_params_v3

NAME = "tenpay_v3"
_PREPAY_PATHS = {
    PayMethod.jsapi: "/v3/pay/transactions/jsapi",
    PayMethod.native: "/v3/pay/transactions/native",
}
_MAX_NOTIFY_BYTES = 64 * 1024
_NACK_BODY = json.dumps({"code": "FAIL", "message": "失败"}, ensure_ascii=False).encode()


class TenpayV3Channel:
    """One merchant number on API v3; the wire (signatures, platform keys) is `V3Wire`."""

    def __init__(
        self,
        account: TenpayAccount,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if account.api_version != "v3":
            raise ValueError(f"account {account.mchid} is configured for API {account.api_version}")
        self._account = account
        self._clock = clock
        self._wire = V3Wire(account, http=http, clock=clock)

    @property
    def name(self) -> str:
        return NAME

    @property
    def account(self) -> str:
        return self._account.mchid

    # -- trades ----------------------------------------------------------------------------

    def prepay(self, request: PrepayRequest) -> Prepay:
        path = _PREPAY_PATHS.get(request.method)
        if path is None:
            raise ChannelDeclinedError(
                f"WeChat Pay does not take {request.method} payments", code="METHOD_NOT_SUPPORTED"
            )
        body: dict[str, Any] = {
            "appid": self._account.appid,
            "mchid": self.account,
            "description": request.description,
            "out_trade_no": request.out_trade_no,
            "time_expire": format_rfc3339_beijing(request.expires_at),
            "notify_url": request.notify_url,
            "amount": {"total": request.amount_fen, "currency": request.currency},
        }
        if request.attach:  # the API refuses an empty attach
            body["attach"] = request.attach
        if request.method is PayMethod.jsapi:
            if not request.payer_openid:
                raise ChannelDeclinedError("JSAPI needs the payer's openid", code="PARAM_ERROR")
            body["payer"] = {"openid": request.payer_openid}
        try:
            data = self._wire.request("POST", path, body=body)
        except ChannelDeclinedError as exc:
            if exc.code in CLOSED_CODES:  # spec §1.3: a closed number needs a new attempt
                raise OrderNumberUsedError(exc.message, code=exc.code) from exc
            raise
        with reading_answer():
            if request.method is PayMethod.native:
                return Prepay(method=PayMethod.native, code_url=text(data, "code_url"))
            prepay_id = text(data, "prepay_id")
        params = jsapi_params_v3(
            appid=self._account.appid,
            prepay_id=prepay_id,
            private_key=self._wire.private_key,
            timestamp=str(int(self._clock())),
            nonce_str=secrets.token_hex(16),
        )
        return Prepay(method=PayMethod.jsapi, prepay_id=prepay_id, jsapi_params=params)

    def query(self, out_trade_no: str) -> TradeStatus:
        path = f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}"
        try:
            data = self._wire.request("GET", path, query={"mchid": self.account})
        except ChannelDeclinedError as exc:
            if exc.code in NOT_FOUND_CODES:
                return TradeStatus(out_trade_no, TradeState.not_found, channel_state=exc.code)
            raise
        with reading_answer():
            status = _trade_status(data)
        if status.out_trade_no != out_trade_no:
            raise bad_response("the answer is about another trade")
        return status

    def close(self, out_trade_no: str) -> None:
        path = f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}/close"
        try:
            self._wire.request("POST", path, body={"mchid": self.account})
        except ChannelDeclinedError as exc:
            # Already closed, or never created: either way nothing can be paid (spec §1.6).
            if exc.code not in CLOSED_CODES | NOT_FOUND_CODES:
                raise

    # -- refunds ---------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundStatus:
        body: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "out_refund_no": request.out_refund_no,
            "notify_url": request.notify_url,
            "amount": {"refund": request.refund_fen, "total": request.total_fen, "currency": "CNY"},
        }
        if request.reason:
            body["reason"] = request.reason
        data = self._wire.request("POST", "/v3/refund/domestic/refunds", body=body)
        return _checked_refund(data, request.out_refund_no)

    def query_refund(self, out_refund_no: str, *, out_trade_no: str | None = None) -> RefundStatus:
        # WeChat Pay finds a refund by its own number; out_trade_no is not needed.
        data = self._wire.request("GET", f"/v3/refund/domestic/refunds/{_segment(out_refund_no)}")
        return _checked_refund(data, out_refund_no)

    # -- notifies --------------------------------------------------------------------------

    def parse_notify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        if len(body) > _MAX_NOTIFY_BYTES:
            raise NotifyRejectedError("notify body too large")
        problem = self._wire.signature_problem({k.lower(): v for k, v in headers.items()}, body)
        if problem is not None:
            raise NotifyRejectedError(problem)
        try:
            return self._read_notify(body)
        except (ValueError, ChannelError) as exc:
            raise NotifyRejectedError(f"unreadable notify: {exc}") from None

    def notify_ack(self) -> NotifyAnswer:
        return NotifyAnswer(status_code=200, body=b"", media_type="text/plain")

    def notify_nack(self, reason: str) -> NotifyAnswer:
        # The reason stays in our log; WeChat Pay only needs a non-2xx to redeliver (§2.3).
        return NotifyAnswer(status_code=500, body=_NACK_BODY, media_type="application/json")

    def _read_notify(self, body: bytes) -> Notice:
        envelope = json_object(json.loads(body), "notify")
        resource = json_object(envelope.get("resource"), "resource")
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise TenpayProtocolError("resource algorithm is not AEAD_AES_256_GCM")
        associated_data = resource.get("associated_data") or ""
        plaintext = aes_gcm_decrypt(
            apiv3_key=self._wire.apiv3_key,
            nonce=text(resource, "nonce"),
            ciphertext_b64=text(resource, "ciphertext"),
            associated_data=associated_data if isinstance(associated_data, str) else "",
        )
        data = json_object(json.loads(plaintext), "resource")
        event_id, event_type = text(envelope, "id"), text(envelope, "event_type")
        # Refund resources carry no appid; transaction resources must carry ours.
        payment = event_type.startswith("TRANSACTION.")
        if data.get("mchid") != self.account or (
            (payment or "appid" in data) and data.get("appid") != self._account.appid
        ):
            raise NotifyRejectedError("the notify is for another merchant account")
        if event_type == "TRANSACTION.SUCCESS":
            return PaymentNotice(
                event_id=event_id, status=_trade_status(data), account=self.account
            )
        if event_type.startswith("REFUND."):
            status = _refund_status(data, state_field="refund_status")
            return RefundNotice(event_id=event_id, status=status, account=self.account)
        raise NotifyRejectedError(f"unexpected event_type {event_type!r}")

    # -- statements ------------------------------------------------------------------------

    def download_statement(self, bill_date: date) -> Statement:
        query = {"bill_date": bill_date.isoformat(), "bill_type": "ALL"}
        try:
            data = self._wire.request("GET", "/v3/bill/tradebill", query=query)
        except ChannelDeclinedError as exc:
            if exc.code == "NO_STATEMENT_EXIST":  # a day without trades has no bill
                return statement(NAME, self.account, bill_date, None)
            if exc.code == "STATEMENT_CREATING":  # ready after about 10:00 the next day
                raise ChannelRetryableError(exc.message, code=exc.code) from exc
            raise
        with reading_answer():
            hash_type, hash_value = text(data, "hash_type"), text(data, "hash_value")
            download_url = text(data, "download_url")
        if hash_type.upper() != "SHA1":
            raise bad_response(f"unknown bill hash_type {hash_type!r}")
        content = self._download(download_url)
        # The file itself comes unsigned (as at WeChat); the signed answer's hash vouches for it.
        actual = hashlib.sha1(content).hexdigest()  # noqa: S324 - the protocol's hash
        if not hmac.compare_digest(actual, hash_value.lower()):
            raise bad_response("the bill file does not match its hash_value")
        with reading_answer():
            bill = parse_bill(content.decode("utf-8"))
        return statement(NAME, self.account, bill_date, bill)

    def _download(self, download_url: str) -> bytes:
        target, base = httpx.URL(download_url), httpx.URL(self._wire.base_url)
        # Our signature goes with the request: only ever to WeChat Pay's own host.
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise bad_response("download_url points away from WeChat Pay")
        response = self._wire.exchange("GET", target, b"")
        if response.status_code != 200:
            raise ChannelRetryableError(
                f"bill download answered HTTP {response.status_code}",
                code=f"HTTP_{response.status_code}",
            )
        return response.content


# -- mapping ---------------------------------------------------------------------------------


def _trade_status(data: Mapping[str, Any]) -> TradeStatus:
    """A transaction object: a query answer or a TRANSACTION.SUCCESS resource (spec §2.3)."""
    channel_state = text(data, "trade_state")
    amount = json_object(data.get("amount", {}), "amount")
    payer = json_object(data.get("payer", {}), "payer")
    return TradeStatus(
        out_trade_no=text(data, "out_trade_no"),
        state=trade_state(channel_state),
        channel_state=channel_state,
        channel_trade_no=optional_text(data, "transaction_id"),
        amount_fen=fen(amount, "total") if "total" in amount else None,
        currency=optional_text(amount, "currency"),
        paid_at=rfc3339_time(data, "success_time"),
        payer_id=optional_text(payer, "openid"),
    )


def _refund_status(data: Mapping[str, Any], *, state_field: str) -> RefundStatus:
    """Answers say `status`, REFUND.* resources `refund_status`."""
    channel_state = text(data, state_field)
    return RefundStatus(
        out_refund_no=text(data, "out_refund_no"),
        state=refund_state(channel_state),
        channel_state=channel_state,
        channel_refund_no=optional_text(data, "refund_id"),
        amount_fen=fen(json_object(data.get("amount"), "amount"), "refund"),
        out_trade_no=optional_text(data, "out_trade_no"),
        succeeded_at=rfc3339_time(data, "success_time"),
    )


def _checked_refund(data: Mapping[str, Any], out_refund_no: str) -> RefundStatus:
    with reading_answer():
        status = _refund_status(data, state_field="status")
    if status.out_refund_no != out_refund_no:
        raise bad_response("the answer is about another refund")
    return status


def _segment(value: str) -> str:
    # out_trade_no may hold | and *; quoted here, httpx sends (and we sign) it unchanged.
    return quote(value, safe="")
