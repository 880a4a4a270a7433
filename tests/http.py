"""HTTP to an app in this process, through its ASGI interface."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI


async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # ASGITransport runs no lifespan: the app's engine is disposed here, and tests build the
    # store index themselves where they need it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://tianfu.test") as http:
            yield http
    finally:
        app.state.engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
