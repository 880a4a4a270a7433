"""The real app with its H5 pages, in process (ASGI) or served by uvicorn on loopback for a browser.

The socket is bound before the app is built, because the app must know its own public URL: the
OAuth redirect_uri and the JS-SDK signature are made from `public_base_url`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from lbs import h5_session, pages
from lbs.client import WeChatClient
from tianfu.app import create_app
from tianfu.settings import TianfuSettings

START_TIMEOUT_S = 30.0


def h5_app(settings: TianfuSettings) -> FastAPI:
    app = create_app(settings)
    _wire_h5(app)
    return app


def _wire_h5(app: FastAPI) -> None:
    """Adds the H5 pieces that create_app does not add yet (each only once), so these tests run
    the same app before and after tianfu/app.py wires them in."""
    paths = {getattr(route, "path", None) for route in app.routes}
    if h5_session.WeChatLoginRequiredError not in app.exception_handlers:
        app.add_exception_handler(
            h5_session.WeChatLoginRequiredError, h5_session.redirect_to_wechat_login
        )
    middleware: list[object] = [m.cls for m in app.user_middleware]
    if h5_session.H5SessionMiddleware not in middleware:
        app.add_middleware(h5_session.H5SessionMiddleware)
    if h5_session.CALLBACK_PATH not in paths:
        app.include_router(h5_session.router)
    if "/h5/nearby" not in paths:
        app.include_router(pages.router)
    if h5_session.STATIC_URL_PREFIX not in paths:
        app.mount(
            h5_session.STATIC_URL_PREFIX,
            StaticFiles(directory=h5_session.STATIC_DIR),
            name="h5-static",
        )
    if getattr(app.state, "wechat_client", None) is None:
        app.state.wechat_client = WeChatClient(app.state.settings.wechat, app.state.session_factory)


@contextmanager
def loopback_socket() -> Iterator[socket.socket]:
    # Bound to port 0 and kept open until uvicorn takes it: parallel workers never race for a port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


def base_url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def serving_until_ready(app: FastAPI, sock: socket.socket) -> Iterator[str]:
    """Serve `app` (lifespan on: the store index builds) and wait for /readyz."""
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, ws="none", lifespan="on",
        timeout_graceful_shutdown=2,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = base_url_of(sock)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if not thread.is_alive():
                raise RuntimeError("the app's server thread ended before it was ready")
            if server.started and httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app was not ready within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
