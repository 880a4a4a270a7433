"""WeChat Pay (Tenpay) on loopback (ARCHITECTURE.md, "External systems and their simulators";
spec §5): API v2 and v3 for one merchant number, a cashier page for the buyer, notifies with
WeChat's redelivery, per-test faults, a movable clock and bills drawn from its own ledger.

    app = create_simulator_app(TenpaySimConfig(...))
    app.state.sim  # TenpaySimState: tests drive payments and faults through it, or over
                   # HTTP through the /sim/... routes

Modules: `simulator_v2` / `simulator_v3` (the two protocols), `sim_cashier` (the buyer),
`sim_control` (/sim JSON routes), `sim_state` + `sim_ledger` (memory), `sim_notify` (notifies),
`sim_messages` (wire shapes), `sim_bill`, `sim_keys` + `sim_dev` (throwaway keys for
`tianfu sim tenpay`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from tenpay_adapter import sim_cashier, sim_control, simulator_v2, simulator_v3
from tenpay_adapter.sim_config import TenpaySimConfig
from tenpay_adapter.sim_state import TenpaySimState

__all__ = [
    "TenpaySimConfig",
    "TenpaySimState",
    "create_simulator_app",
    "serve_simulator",
]


def create_simulator_app(config: TenpaySimConfig) -> FastAPI:
    state = TenpaySimState(config)
    # Load the keys now: a bad PEM should fail at start, not on the first request.
    _ = (config.merchant_public_key, config.platform_private_key, config.platform_serial_no)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="WeChat Pay simulator", lifespan=lifespan, openapi_url=None)
    app.state.sim = state
    for module in (simulator_v3, simulator_v2, sim_cashier, sim_control):
        app.include_router(module.router)
    return app


def serve_simulator(*, host: str, port: int, config: TenpaySimConfig) -> None:
    # No access log: bill download URLs carry their token in the query string.
    uvicorn.run(create_simulator_app(config), host=host, port=port, access_log=False)
