"""What the channel client tests share: accounts the simulator accepts, the simulator's /sim
control routes over HTTP, a notify capture that answers through the channel under test (as our
notify route does), and a fake gateway for answers the simulator never gives.

Keys come from `sim_support` (throwaway, made once per session).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payments.channels import (
    Notice,
    NotifyRejectedError,
    PaymentChannel,
    PayMethod,
    PrepayRequest,
    RefundRequest,
)
from tenpay_adapter.config import TenpayAccount
from tenpay_adapter.timefmt import BEIJING
from tests.tenpay.sim_support import (
    API_KEY,
    APIV3_KEY,
    APPID,
    MCHID,
    OPENID,
    merchant_keys,
    platform_keys,
    wait_until,
)

OTHER_MCHID = "1900000109"


def v3_account(base_url: str, **overrides: Any) -> TenpayAccount:
    values: dict[str, Any] = {
        "mchid": MCHID,
        "appid": APPID,
        "api_version": "v3",
        "apiv3_key": APIV3_KEY,
        "merchant_private_key_pem": merchant_keys().private_key_pem,
        "merchant_serial_no": merchant_keys().serial_no,
        "platform_certificate_pem": platform_keys().certificate_pem,
        "base_url": base_url,
        "timeout_s": 5.0,
    }
    return TenpayAccount(**(values | overrides))


def v2_account(base_url: str, **overrides: Any) -> TenpayAccount:
    values: dict[str, Any] = {
        "mchid": MCHID,
        "appid": APPID,
        "api_version": "v2",
        "api_key": API_KEY,
        "sign_type": "HMAC-SHA256",
        "base_url": base_url,
        "timeout_s": 5.0,
    }
    return TenpayAccount(**(values | overrides))


def new_no(prefix: str = "T") -> str:
    return f"{prefix}{secrets.token_hex(10)}"


def prepay_request(
    out_trade_no: str,
    *,
    notify_url: str,
    amount_fen: int = 8888,
    method: PayMethod = PayMethod.jsapi,
    expires_at: datetime | None = None,
) -> PrepayRequest:
    return PrepayRequest(
        out_trade_no=out_trade_no,
        description="电影票 2 张 - 3 号厅",
        amount_fen=amount_fen,
        method=method,
        notify_url=notify_url,
        # Whole seconds: the wire formats carry no fraction.
        expires_at=expires_at or datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=15),
        client_ip="203.0.113.7",
        payer_openid=OPENID if method is PayMethod.jsapi else None,
        attach="order=42",
    )


def refund_request(
    out_trade_no: str, out_refund_no: str, *, refund_fen: int, total_fen: int, notify_url: str
) -> RefundRequest:
    return RefundRequest(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        refund_fen=refund_fen,
        total_fen=total_fen,
        reason="顾客退票",
        notify_url=notify_url,
    )


class SimControl:
    """The simulator's /sim routes: the buyer's side, faults and the clock."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=5.0)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SimControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        response = self.http.post(path, json=body)
        assert response.is_success, response.text
        return response

    def pay(self, out_trade_no: str) -> dict[str, Any]:
        found: dict[str, Any] = self._post(f"/sim/trades/{out_trade_no}/pay").json()
        return found

    def decline(self, out_trade_no: str) -> None:
        self._post(f"/sim/trades/{out_trade_no}/decline")

    def trade(self, out_trade_no: str) -> dict[str, Any]:
        found: dict[str, Any] = self.http.get(f"/sim/trades/{out_trade_no}").json()
        return found

    def fault(self, endpoint: str, mode: str, *, delay_s: float | None = None) -> None:
        self._post("/sim/faults", {"endpoint": endpoint, "mode": mode, "delay_s": delay_s})

    def advance_clock(self, seconds: float) -> None:
        self._post("/sim/clock", {"advance_s": seconds})

    def today(self) -> date:
        """The simulator's Beijing day, which its bills are cut by."""
        clock = datetime.fromisoformat(self.http.get("/sim/stats").json()["clock"])
        return clock.astimezone(BEIJING).date()


@dataclass(frozen=True)
class Captured:
    headers: dict[str, str]  # lower-case names, as our notify route hands them on
    body: bytes
    notice: Notice | None
    refusal: str | None


class NotifyCapture:
    """Our notify URL in miniature: `channel.parse_notify`, then its ack or nack."""

    def __init__(self) -> None:
        self.channel: PaymentChannel | None = None
        self._lock = threading.Lock()
        self._captured: list[Captured] = []
        self.app = Starlette(routes=[Route("/notify", self._notify, methods=["POST"])])

    def reset(self, channel: PaymentChannel) -> None:
        with self._lock:
            self.channel = channel
            self._captured.clear()

    @property
    def captured(self) -> list[Captured]:
        with self._lock:
            return list(self._captured)

    def notices(self) -> list[Notice]:
        return [c.notice for c in self.captured if c.notice is not None]

    def wait_for(self, predicate: Callable[[list[Captured]], bool]) -> list[Captured]:
        wait_until(lambda: predicate(self.captured), what="notifies")
        return self.captured

    async def _notify(self, request: Request) -> Response:
        channel = self.channel
        assert channel is not None
        headers = {name.lower(): value for name, value in request.headers.items()}
        body = await request.body()
        notice: Notice | None = None
        refusal: str | None = None
        try:
            notice = await run_in_threadpool(channel.parse_notify, headers, body)
            answer = channel.notify_ack()
        except NotifyRejectedError as exc:
            refusal = str(exc)
            answer = channel.notify_nack(refusal)
        with self._lock:
            self._captured.append(Captured(headers, body, notice, refusal))
        return Response(answer.body, answer.status_code, media_type=answer.media_type)


class FakeGateway:
    """Answers every request with `answer(path)`; for what the simulator cannot be made to say
    (a badly signed answer, an unsigned 200)."""

    def __init__(self, answer: Callable[[str], Response]) -> None:
        self.answer = answer
        self.paths: list[str] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._any, methods=["GET", "POST"])])

    async def _any(self, request: Request) -> Response:
        self.paths.append(request.url.path)
        return self.answer(request.url.path)
