"""`/wechat`: the Official Account's callback URL (spec §2, §3, §6, §9).

Every refusal is a short plain-text answer with a 4xx status: WeChat only needs a non-200, and
nothing about the refusal (let alone a traceback) should help whoever sent it. Signatures,
freshness and size are checked before the body is parsed; the body is parsed with a parser that
refuses DTDs and entities; in compatible and safe mode the decrypted message is the only one
trusted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from lbs.config import WeChatSettings
from lbs.dispatch import Handoff, PushHandler
from lbs.push_log import SUCCESS
from lbs.wxcrypto import (
    WeChatDecryptError,
    WXBizMsgCrypt,
    msg_signature,
    plain_signature,
    signatures_match,
)
from lbs.wxxml import (
    MAX_BODY_BYTES,
    IncomingMessage,
    MessageInvalidError,
    XmlRejectedError,
    parse_message,
    parse_xml,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["wechat"])

XML_MEDIA_TYPE = "application/xml"


class PushRefusedError(Exception):
    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


@dataclass(frozen=True)
class SignedQuery:
    signature: str
    timestamp: str
    nonce: str


def _refusal(exc: PushRefusedError) -> PlainTextResponse:
    return PlainTextResponse(exc.reason, status_code=exc.status_code)


def _configured(wechat: WeChatSettings) -> str:
    if wechat.token is None:
        raise PushRefusedError(503, "the WeChat account is not configured")
    return wechat.token.get_secret_value()


def verify_signed_query(
    wechat: WeChatSettings, params: dict[str, str], *, now_s: float
) -> SignedQuery:
    """The 3-part signature and the freshness window; both apply to every GET and POST."""
    token = _configured(wechat)
    query = SignedQuery(
        signature=params.get("signature", ""),
        timestamp=params.get("timestamp", ""),
        nonce=params.get("nonce", ""),
    )
    if not (query.signature and query.timestamp and query.nonce):
        raise PushRefusedError(403, "missing signature, timestamp or nonce")
    if not query.timestamp.isdigit() or len(query.timestamp) > 12:
        raise PushRefusedError(403, "bad timestamp")
    expected = plain_signature(token, query.timestamp, query.nonce)
    if not signatures_match(expected, query.signature):
        raise PushRefusedError(403, "bad signature")
    # Checked after the signature, so a forged request learns nothing about our clock.
    if abs(now_s - int(query.timestamp)) > wechat.timestamp_window_s:
        raise PushRefusedError(403, "stale timestamp")
    return query


async def read_capped_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise PushRefusedError(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PushRefusedError(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def crypt_for(wechat: WeChatSettings) -> WXBizMsgCrypt:
    token = _configured(wechat)
    if wechat.aes_key is None or wechat.appid is None:
        raise PushRefusedError(503, "encrypted mode is not configured")
    return WXBizMsgCrypt(token=token, aes_key=wechat.aes_key, appid=wechat.appid)


def open_push(
    wechat: WeChatSettings, params: dict[str, str], query: SignedQuery, body: bytes
) -> tuple[IncomingMessage, bool]:
    """The message, and whether it came encrypted (so the reply must be too)."""
    encrypt_type = params.get("encrypt_type", "raw")
    try:
        envelope = parse_xml(body)
    except XmlRejectedError as exc:
        raise PushRefusedError(400, f"rejected XML: {exc}") from None
    if encrypt_type == "aes":
        plaintext = _decrypt(wechat, params, query, envelope.get("Encrypt"))
        try:
            fields = parse_xml(plaintext.encode("utf-8"))
        except XmlRejectedError as exc:
            raise PushRefusedError(400, f"rejected XML: {exc}") from None
        encrypted = True
    elif encrypt_type == "raw":
        if wechat.encryption_required:
            raise PushRefusedError(403, "plaintext pushes are refused: use safe mode")
        fields, encrypted = envelope, False
    else:
        raise PushRefusedError(400, "unknown encrypt_type")
    try:
        message = parse_message(fields)
    except MessageInvalidError as exc:
        raise PushRefusedError(400, f"invalid message: {exc}") from None
    if wechat.account_id is not None and message.to_user != wechat.account_id:
        raise PushRefusedError(403, "message for another account")
    return message, encrypted


def _decrypt(
    wechat: WeChatSettings,
    params: dict[str, str],
    query: SignedQuery,
    encrypt: object,
) -> str:
    crypt = crypt_for(wechat)
    if not isinstance(encrypt, str) or not encrypt:
        raise PushRefusedError(400, "no Encrypt element")
    token = _configured(wechat)
    expected = msg_signature(token, query.timestamp, query.nonce, encrypt)
    if not signatures_match(expected, params.get("msg_signature", "")):
        raise PushRefusedError(403, "bad msg_signature")
    try:
        decrypted = crypt.decrypt(encrypt)
    except WeChatDecryptError as exc:
        raise PushRefusedError(400, f"cannot decrypt: {exc}") from None
    return decrypted.plaintext


def seal_reply(wechat: WeChatSettings, reply_xml: str, query: SignedQuery, encrypted: bool) -> str:
    # "success" is never encrypted (spec §5); a reply to an encrypted push always is.
    if not encrypted or reply_xml in (SUCCESS, ""):
        return reply_xml
    return crypt_for(wechat).encrypted_reply_xml(
        reply_xml, timestamp=query.timestamp, nonce=query.nonce
    )


def _now_s(request: Request) -> float:
    # The push handler's clock: one notion of "now" for freshness, dedup and replies.
    handler: PushHandler = request.app.state.push_handler
    return handler.clock().timestamp()


@router.get("/wechat", response_class=PlainTextResponse)
async def verify_url(request: Request) -> Response:
    """URL verification: echo `echostr` unchanged, in every mode (spec §2)."""
    wechat: WeChatSettings = request.app.state.settings.wechat
    params = dict(request.query_params)
    try:
        verify_signed_query(wechat, params, now_s=_now_s(request))
    except PushRefusedError as exc:
        return _refusal(exc)
    return PlainTextResponse(params.get("echostr", ""))


async def receive_push(request: Request) -> Response:
    started = time.monotonic()
    wechat: WeChatSettings = request.app.state.settings.wechat
    params = dict(request.query_params)
    try:
        query = verify_signed_query(wechat, params, now_s=_now_s(request))
        body = await read_capped_body(request)
        message, encrypted = open_push(wechat, params, query, body)
    except PushRefusedError as exc:
        return _refusal(exc)
    handler: PushHandler = request.app.state.push_handler
    reply_xml = await _answer_within_budget(request, handler, message, started)
    sealed = seal_reply(wechat, reply_xml, query, encrypted)
    media_type = "text/plain" if sealed == SUCCESS else XML_MEDIA_TYPE
    return Response(sealed, media_type=media_type)


# A plain Starlette route rather than a FastAPI one: it takes nothing for FastAPI to parse or
# validate, and skipping that machinery saves about 30 µs of every push (a sixth of this
# endpoint's own work outside the reply). Errors reach the app's handlers the same way; it is
# left out of the OpenAPI schema, which has no use for WeChat's callback.
router.add_route("/wechat", receive_push, methods=["POST"], include_in_schema=False)


async def _answer_within_budget(
    request: Request, handler: PushHandler, message: IncomingMessage, started: float
) -> str:
    """The reply, or "success" if it is not ready within the budget; then the worker thread
    finishes on its own and sends the answer as a customer-service message."""
    budget_s = request.app.state.settings.wechat.reply_budget_s
    handoff = Handoff()
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(request.app.state.push_executor, handler.handle, message, handoff)
    work.add_done_callback(_log_abandoned_failure)
    remaining = max(0.0, budget_s - (time.monotonic() - started))
    done, _ = await asyncio.wait({work}, timeout=remaining)
    if not done and handoff.give_up():
        logger.warning("reply to %s not ready in %.1f s: sent later", message.dedup_key, budget_s)
        return SUCCESS
    # Either done, or the worker had already committed to answering in this response.
    return await work


def _log_abandoned_failure(work: asyncio.Future[str]) -> None:
    # Retrieving the exception here keeps an abandoned attempt's failure in the log; an awaited
    # one is raised to the request as well, where the app's handler turns it into a plain 500.
    if not work.cancelled() and work.exception() is not None:
        logger.error("handling a WeChat push failed", exc_info=work.exception())
