"""WeChat Pay API v2 as a `PaymentChannel` (spec §1): signed XML over HTTPS, read in three layers
(protocol `return_code`, business `result_code`, then the trade's state, §1.1). Every SUCCESS
answer's sign is checked before a word of it is believed; a FAIL answer carries none (§1.1).

Refunds (`/secapi/pay/refund`) need the merchant's API certificate over mutual TLS (§1.7): pass
`client_cert_path` and `client_key_path`. The simulator on loopback is plain HTTP and asks for
no certificate, so tests hand in an httpx client of their own, which is then used for every call.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from datetime import date

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
    RefundState,
    RefundStatus,
    Statement,
    TradeState,
    TradeStatus,
)
from tenpay_adapter.bill import parse_bill
from tenpay_adapter.client import (
    CLOSED_CODES,
    NOT_FOUND_CODES,
    RETRYABLE_CODES,
    bad_response,
    channel_error,
    owned_http_client,
    reading_answer,
    refund_state,
    secret,
    send,
    statement,
    trade_state,
)
from tenpay_adapter.config import TenpayAccount
from tenpay_adapter.errors import TenpayProtocolError
from tenpay_adapter.v2_signing import (
    decrypt_req_info,
    fen,
    format_beijing_compact,
    jsapi_params_v2,
    nonce_str,
    notify_reply,
    parse_beijing_compact,
    parse_beijing_dashed,
    parse_xml,
    signed,
    to_xml,
    verify_v2,
)

NAME = "tenpay_v2"
_TRADE_TYPES = {PayMethod.jsapi: "JSAPI", PayMethod.native: "NATIVE"}
_XML_MEDIA_TYPE = "text/xml; charset=utf-8"
# downloadbill's FAIL answers (spec §1.10): no trades that day, or not generated yet.
_NO_BILL = "No Bill Exist"
_BILL_CREATING = "Bill Creating"
_MAX_NACK_MESSAGE = 128


class TenpayV2Channel:
    """One merchant number on API v2, signing with `account.sign_type`."""

    def __init__(
        self,
        account: TenpayAccount,
        *,
        http: httpx.Client | None = None,
        client_cert_path: str | None = None,
        client_key_path: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if account.api_version != "v2":
            raise ValueError(f"account {account.mchid} is configured for API {account.api_version}")
        self._account = account
        self._api_key = secret(account.api_key, "api_key")
        self._base_url = account.base_url.rstrip("/")
        self._clock = clock
        self._http = http if http is not None else owned_http_client(self, account)
        self._secure_http = self._http
        if http is None and client_cert_path is not None:
            # httpx 0.28 deprecates `cert=`; an SSL context carrying the chain is its successor.
            tls = ssl.create_default_context()
            tls.load_cert_chain(client_cert_path, client_key_path)
            self._secure_http = owned_http_client(self, account, tls=tls)

    @property
    def name(self) -> str:
        return NAME

    @property
    def account(self) -> str:
        return self._account.mchid

    # -- trades ----------------------------------------------------------------------------

    def prepay(self, request: PrepayRequest) -> Prepay:
        trade_type = _TRADE_TYPES.get(request.method)
        if trade_type is None:
            raise ChannelDeclinedError(
                f"WeChat Pay does not take {request.method} payments", code="METHOD_NOT_SUPPORTED"
            )
        fields: dict[str, str | int] = {
            "body": request.description,
            "out_trade_no": request.out_trade_no,
            "total_fee": request.amount_fen,
            "fee_type": request.currency,
            "spbill_create_ip": request.client_ip,
            "notify_url": request.notify_url,
            "trade_type": trade_type,
            "time_expire": format_beijing_compact(request.expires_at),
        }
        if request.attach:
            fields["attach"] = request.attach
        if request.method is PayMethod.jsapi:
            if not request.payer_openid:
                raise ChannelDeclinedError("JSAPI needs the payer's openid", code="PARAM_ERROR")
            fields["openid"] = request.payer_openid
        else:
            fields["product_id"] = request.out_trade_no  # NATIVE requires one (spec §1.3)
        try:
            answer = self._call("/pay/unifiedorder", fields)
        except ChannelDeclinedError as exc:
            if exc.code in CLOSED_CODES:  # spec §1.3: a closed number needs a new attempt
                raise OrderNumberUsedError(exc.message, code=exc.code) from exc
            raise
        with reading_answer():
            prepay_id = _field(answer, "prepay_id")
            if request.method is PayMethod.native:
                code_url = _field(answer, "code_url")
                return Prepay(method=PayMethod.native, prepay_id=prepay_id, code_url=code_url)
        params = jsapi_params_v2(
            appid=self._account.appid,
            prepay_id=prepay_id,
            api_key=self._api_key,
            sign_type=self._account.sign_type,
            timestamp=str(int(self._clock())),
            nonce_str=nonce_str(),
        )
        return Prepay(method=PayMethod.jsapi, prepay_id=prepay_id, jsapi_params=params)

    def query(self, out_trade_no: str) -> TradeStatus:
        try:
            answer = self._call("/pay/orderquery", {"out_trade_no": out_trade_no})
        except ChannelDeclinedError as exc:
            if exc.code in NOT_FOUND_CODES:
                return TradeStatus(out_trade_no, TradeState.not_found, channel_state=exc.code)
            raise
        with reading_answer():
            status = _trade_status(answer, _field(answer, "trade_state"))
        if status.out_trade_no != out_trade_no:
            raise bad_response("the answer is about another trade")
        return status

    def close(self, out_trade_no: str) -> None:
        # Within 5 minutes of the order the gateway refuses (spec §1.6); the simulator says
        # SYSTEMERROR then, which is retryable: the caller closes again later.
        try:
            self._call("/pay/closeorder", {"out_trade_no": out_trade_no})
        except ChannelDeclinedError as exc:
            # Already closed, or never created: either way nothing can be paid.
            if exc.code not in CLOSED_CODES | NOT_FOUND_CODES:
                raise

    # -- refunds ---------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundStatus:
        fields: dict[str, str | int] = {
            "out_trade_no": request.out_trade_no,
            "out_refund_no": request.out_refund_no,
            "total_fee": request.total_fen,
            "refund_fee": request.refund_fen,
            "notify_url": request.notify_url,
        }
        if request.reason:
            fields["refund_desc"] = request.reason
        answer = self._call("/secapi/pay/refund", fields, secure=True)
        # SUCCESS only means accepted (spec §1.7): the result comes by query or notify.
        with reading_answer():
            status = RefundStatus(
                out_refund_no=_field(answer, "out_refund_no"),
                state=RefundState.processing,
                channel_state="PROCESSING",
                channel_refund_no=answer.get("refund_id") or None,
                amount_fen=fen(_field(answer, "refund_fee")),
                out_trade_no=answer.get("out_trade_no") or None,
            )
        if status.out_refund_no != request.out_refund_no:
            raise bad_response("the answer is about another refund")
        return status

    def query_refund(self, out_refund_no: str, *, out_trade_no: str | None = None) -> RefundStatus:
        # WeChat Pay finds a refund by its own number; out_trade_no is not needed.
        answer = self._call("/pay/refundquery", {"out_refund_no": out_refund_no})
        with reading_answer():
            return _queried_refund(answer, out_refund_no)

    # -- notifies --------------------------------------------------------------------------

    def parse_notify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        try:
            # parse_xml refuses any DOCTYPE/ENTITY before parsing (spec §6, XXE).
            fields = parse_xml(body)
        except TenpayProtocolError as exc:
            raise NotifyRejectedError(f"unreadable notify: {exc}") from None
        if fields.get("return_code") != "SUCCESS":
            raise NotifyRejectedError("the notify says return_code FAIL")
        if fields.get("appid") != self._account.appid or fields.get("mch_id") != self.account:
            raise NotifyRejectedError("the notify is for another merchant account")
        try:
            if "req_info" in fields:
                return self._refund_notice(fields)
            return self._payment_notice(fields)
        except (ValueError, ChannelError) as exc:
            raise NotifyRejectedError(f"unreadable notify: {exc}") from None

    def notify_ack(self) -> NotifyAnswer:
        return NotifyAnswer(200, notify_reply(ok=True, message="OK"), _XML_MEDIA_TYPE)

    def notify_nack(self, reason: str) -> NotifyAnswer:
        # Only printable text: a control character would make the reply unrenderable XML.
        message = "".join(ch for ch in reason if ch.isprintable())[:_MAX_NACK_MESSAGE] or "FAIL"
        return NotifyAnswer(200, notify_reply(ok=False, message=message), _XML_MEDIA_TYPE)

    def _payment_notice(self, fields: Mapping[str, str]) -> PaymentNotice:
        # verify_v2 takes a 64-hex sign without sign_type as HMAC-SHA256 (spec §1.9, §6).
        if not verify_v2(fields, self._api_key):
            raise NotifyRejectedError("the sign does not verify")
        result_code = _field(fields, "result_code")
        paid = result_code == "SUCCESS"
        status = _trade_status(fields, "SUCCESS" if paid else "PAYERROR")
        # Dedup key (spec §6): one event per payment and outcome.
        reference = fields.get("transaction_id") or status.out_trade_no
        return PaymentNotice(
            event_id=f"{reference}:{result_code}", status=status, account=self.account
        )

    def _refund_notice(self, fields: Mapping[str, str]) -> RefundNotice:
        # No sign on refund notifies (spec §1.9): req_info opening under our API key is the
        # only proof of origin, so everything read comes from inside it.
        info = decrypt_req_info(fields["req_info"], self._api_key)
        channel_state = _field(info, "refund_status")
        success_time = info.get("success_time")
        status = RefundStatus(
            out_refund_no=_field(info, "out_refund_no"),
            state=refund_state(channel_state),
            channel_state=channel_state,
            channel_refund_no=_field(info, "refund_id"),
            amount_fen=fen(_field(info, "refund_fee")),
            out_trade_no=info.get("out_trade_no") or None,
            succeeded_at=parse_beijing_dashed(success_time) if success_time else None,
        )
        event_id = f"{status.channel_refund_no}:{channel_state}"
        return RefundNotice(event_id=event_id, status=status, account=self.account)

    # -- statements ------------------------------------------------------------------------

    def download_statement(self, bill_date: date) -> Statement:
        """The bill is plain text and unsigned (spec §1.10): TLS is all that vouches for it."""
        fields = {"bill_date": bill_date.strftime("%Y%m%d"), "bill_type": "ALL"}
        response = self._post("/pay/downloadbill", fields)
        if response.status_code != 200:
            raise ChannelRetryableError(
                f"WeChat Pay answered HTTP {response.status_code}",
                code=f"HTTP_{response.status_code}",
            )
        if response.content.lstrip().startswith(b"<xml"):
            with reading_answer():
                message = parse_xml(response.content).get("return_msg", "")
            if _NO_BILL in message:
                return statement(NAME, self.account, bill_date, None)
            if _BILL_CREATING in message:
                raise ChannelRetryableError(message, code="BILL_CREATING")
            raise _protocol_failure(message)
        with reading_answer():
            bill = parse_bill(response.content.decode("utf-8"))
        return statement(NAME, self.account, bill_date, bill)

    # -- the wire --------------------------------------------------------------------------

    def _post(
        self, path: str, fields: Mapping[str, str | int], *, secure: bool = False
    ) -> httpx.Response:
        params: dict[str, str | int] = {
            "appid": self._account.appid,
            "mch_id": self.account,
            "nonce_str": nonce_str(),
            # Named even for MD5, the default: the answer is then signed the same way.
            "sign_type": self._account.sign_type,
            **fields,
        }
        body = to_xml(signed(params, self._api_key, self._account.sign_type))
        http = self._secure_http if secure else self._http
        headers = {"Content-Type": _XML_MEDIA_TYPE}
        return send(
            http, http.build_request("POST", self._base_url + path, content=body, headers=headers)
        )

    def _call(
        self, path: str, fields: Mapping[str, str | int], *, secure: bool = False
    ) -> dict[str, str]:
        """A verified answer with result_code SUCCESS, or the call's ChannelError."""
        response = self._post(path, fields, secure=secure)
        if response.status_code != 200:
            raise ChannelRetryableError(
                f"WeChat Pay answered HTTP {response.status_code}",
                code=f"HTTP_{response.status_code}",
            )
        with reading_answer():
            answer = parse_xml(response.content)
        if answer.get("return_code") != "SUCCESS":
            raise _protocol_failure(answer.get("return_msg", ""))
        if not verify_v2(answer, self._api_key):
            raise bad_response("answer not trusted: the sign does not verify")
        if answer.get("appid", self._account.appid) != self._account.appid or (
            answer.get("mch_id", self.account) != self.account
        ):
            raise bad_response("the answer is for another merchant account")
        if answer.get("result_code") != "SUCCESS":
            code = answer.get("err_code") or "FAIL"
            raise channel_error(code, answer.get("err_code_des", ""))
        return answer


def _protocol_failure(message: str) -> ChannelError:
    """return_code FAIL: the gateway refused the request itself (sign, XML, parameters), so
    nothing happened, unless it was too busy to look, which is worth another try."""
    if message.upper() in RETRYABLE_CODES or "繁忙" in message:
        return ChannelRetryableError(message, code="FAIL")
    return ChannelDeclinedError(message or "return_code FAIL", code="FAIL")


def _field(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise TenpayProtocolError(f"{name} is missing")
    return value


def _trade_status(fields: Mapping[str, str], channel_state: str) -> TradeStatus:
    """orderquery answers and payment notifies share these fields (spec §1.5, §1.9)."""
    total_fee, time_end = fields.get("total_fee"), fields.get("time_end")
    return TradeStatus(
        out_trade_no=_field(fields, "out_trade_no"),
        state=trade_state(channel_state),
        channel_state=channel_state,
        channel_trade_no=fields.get("transaction_id") or None,
        amount_fen=fen(total_fee) if total_fee else None,
        # fee_type is optional and means CNY when absent.
        currency=(fields.get("fee_type") or "CNY") if total_fee else None,
        paid_at=parse_beijing_compact(time_end) if time_end else None,
        payer_id=fields.get("openid") or None,
    )


def _queried_refund(answer: Mapping[str, str], out_refund_no: str) -> RefundStatus:
    """refundquery numbers its refunds _0, _1 … (spec §1.8); pick ours by its number."""
    n = 0
    while f"out_refund_no_{n}" in answer:
        if answer[f"out_refund_no_{n}"] == out_refund_no:
            channel_state = _field(answer, f"refund_status_{n}")
            success_time = answer.get(f"refund_success_time_{n}")
            return RefundStatus(
                out_refund_no=out_refund_no,
                state=refund_state(channel_state),
                channel_state=channel_state,
                channel_refund_no=answer.get(f"refund_id_{n}") or None,
                amount_fen=fen(_field(answer, f"refund_fee_{n}")),
                out_trade_no=answer.get("out_trade_no") or None,
                succeeded_at=parse_beijing_dashed(success_time) if success_time else None,
            )
        n += 1
    raise TenpayProtocolError("the answer does not list the refund asked about")
