"""The WeChat API simulator (`lbs.simulator`) on loopback, for any test that needs it.

    with running_simulator(SimulatorConfig(appid=..., appsecret=...)) as sim:
        client = WeChatClient(sim.wechat_settings(), factory)
        ...
        assert sim.state.token_fetches == 1

`serving(app)` runs any ASGI app the same way (uvicorn in a thread, on a socket bound to port 0
and kept open, so parallel test workers never race for a port). `PushReceiver` stands in for our
`/wechat` where a test only needs WeChat's pushes checked and recorded.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from lbs.config import WeChatSettings
from lbs.simulator import SimulatorConfig, SimulatorState, create_simulator_app
from lbs.wxcrypto import WXBizMsgCrypt, plain_signature, signatures_match
from lbs.wxxml import parse_xml

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RunningSimulator:
    base_url: str
    state: SimulatorState

    @property
    def config(self) -> SimulatorConfig:
        return self.state.config

    def wechat_settings(self, **overrides: Any) -> WeChatSettings:
        """Settings of an account the simulator accepts, with both API hosts pointing at it."""
        config = self.config
        values: dict[str, Any] = {
            "appid": config.appid,
            "appsecret": config.appsecret,
            "token": config.token,
            "encoding_aes_key": config.encoding_aes_key,
            "account_id": config.account_id,
            "api_base_url": self.base_url,
            "open_base_url": self.base_url,
        }
        return WeChatSettings(**(values | overrides))


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ws="none",  # nothing here speaks WebSocket; skips importing the websockets package
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server thread ended before serving")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start within {START_TIMEOUT_S} s")
        time.sleep(0.01)


@contextmanager
def running_simulator(config: SimulatorConfig) -> Iterator[RunningSimulator]:
    app = create_simulator_app(config)
    with serving(app) as base_url:
        yield RunningSimulator(base_url=base_url, state=app.state.sim)


class PushReceiver:
    """A `/wechat` stand-in: checks `signature` (and, for `encrypt_type=aes`, `msg_signature` and
    the decryption), records the message's fields, runs `on_message`, answers "success".
    The first `fail_first` pushes get HTTP 500, to exercise WeChat's retries."""

    def __init__(
        self,
        *,
        token: str,
        crypt: WXBizMsgCrypt | None = None,
        fail_first: int = 0,
        on_message: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self._token = token
        self._crypt = crypt
        self._failures_left = fail_first
        self._on_message = on_message
        self._lock = threading.Lock()
        self.received: list[dict[str, str]] = []
        self.encrypted: list[bool] = []
        self.attempts = 0
        self.app = Starlette(routes=[Route("/wechat", self._push, methods=["POST"])])

    def wait_for(self, count: int, *, timeout_s: float = 10.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} pushes received, expected {count}")
            time.sleep(0.02)
        return list(self.received)

    async def _push(self, request: Request) -> Response:
        with self._lock:
            self.attempts += 1
            if self._failures_left > 0:
                self._failures_left -= 1
                return PlainTextResponse("try again", status_code=500)
        query = request.query_params
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        expected = plain_signature(self._token, timestamp, nonce)
        if not signatures_match(expected, query.get("signature", "")):
            return PlainTextResponse("bad signature", status_code=403)
        fields = parse_xml(await request.body())
        encrypted = query.get("encrypt_type") == "aes"
        if encrypted:
            assert self._crypt is not None, "an encrypted push, but no key to read it"
            decrypted = self._crypt.decrypt_verified(
                str(fields["Encrypt"]),
                msg_signature=query.get("msg_signature", ""),
                timestamp=timestamp,
                nonce=nonce,
            )
            fields = parse_xml(decrypted.plaintext.encode("utf-8"))
        message = {name: value for name, value in fields.items() if isinstance(value, str)}
        if self._on_message is not None:
            self._on_message(message)
        with self._lock:
            self.received.append(message)
            self.encrypted.append(encrypted)
        return PlainTextResponse("success")
