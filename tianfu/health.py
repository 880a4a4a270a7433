"""Liveness and readiness.

`/healthz` answers whether this worker can reach its database. `/readyz` answers whether it should
receive traffic: every registered readiness check passes (schema at head now; later the spatial
index built), so a load balancer holds traffic back from a worker that is still starting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tianfu import migrate
from tianfu.db import ping

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], str | None]  # None when ready, else the reason it is not


@dataclass
class Readiness:
    checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    def register(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def failures(self) -> dict[str, str]:
        failed: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                reason = check()
            except Exception as exc:  # a check that breaks means not ready, not a 500
                logger.warning("readiness check %s failed", name, exc_info=exc)
                reason = f"check failed: {type(exc).__name__}"
            if reason is not None:
                failed[name] = reason
        return failed


def schema_at_head_check(engine: Engine) -> ReadinessCheck:
    head = migrate.head_revision()

    def check() -> str | None:
        current = migrate.current_revision(engine)
        if current != head:
            return (
                f"database schema at {current or 'nothing'}, expected {head}: "
                "run `tianfu db upgrade`"
            )
        return None

    return check


router = APIRouter(tags=["health"])


@router.get("/livez", response_class=PlainTextResponse)
async def livez() -> str:
    """The process answers HTTP: no database, no threads. Also the cheapest request this
    server can serve, the ceiling the load benches compare against."""
    return "ok"


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    try:
        ping(request.app.state.engine)
    except SQLAlchemyError as exc:
        logger.warning("database unreachable", exc_info=exc)
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    readiness: Readiness = request.app.state.readiness
    failed = readiness.failures()
    if failed:
        return JSONResponse({"status": "not_ready", "checks": failed}, status_code=503)
    return JSONResponse({"status": "ready", "checks": sorted(readiness.checks)})
