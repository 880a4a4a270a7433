"""Alipay's open platform on loopback (ARCHITECTURE.md, "External systems and their simulators";
spec §3, §5): `/gateway.do` for one application, a cashier page for the buyer, notifies with
Alipay's redelivery, per-test faults, a movable clock and bills drawn from its own ledger.

    app = create_alipay_simulator_app(AlipaySimConfig(...))
    app.state.sim  # AlipaySimState: tests drive payments and faults through it, or over HTTP
                   # through the /sim/... routes

Modules: `sim_gateway` (the protocol) with `sim_wire` (answers, biz_content), `sim_methods` (the
trade methods) and `sim_bill` (bills); `sim_cashier` (the buyer), `sim_control` (/sim JSON
routes), `sim_state` + `sim_ledger` + `sim_trades` (memory), `sim_notify` + `sim_messages`
(notifies and wire fields), `sim_dev` (throwaway keys for `tianfu sim alipay`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from payments.alipay import sim_bill, sim_cashier, sim_control, sim_gateway
from payments.alipay.sim_config import AlipaySimConfig
from payments.alipay.sim_state import AlipaySimState

__all__ = [
    "AlipaySimConfig",
    "AlipaySimState",
    "create_alipay_simulator_app",
    "serve_simulator",
]


def create_alipay_simulator_app(config: AlipaySimConfig) -> FastAPI:
    state = AlipaySimState(config)
    # Load the keys now: a bad PEM should fail at start, not on the first request.
    _ = (config.app_public_key, config.alipay_private_key)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="Alipay simulator", lifespan=lifespan, openapi_url=None)
    app.state.sim = state
    for module in (sim_gateway, sim_bill, sim_cashier, sim_control):
        app.include_router(module.router)
    return app


def serve_simulator(*, host: str, port: int, config: AlipaySimConfig) -> None:
    # No access log: bill download URLs carry their token in the query string.
    uvicorn.run(create_alipay_simulator_app(config), host=host, port=port, access_log=False)
