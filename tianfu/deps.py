"""Request-scoped dependencies shared by every domain's routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from tianfu.settings import TianfuSettings


def get_db_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed here when the handler returns without error."""
    with request.app.state.session_factory() as session, session.begin():
        yield session


def get_app_settings(request: Request) -> TianfuSettings:
    settings: TianfuSettings = request.app.state.settings
    return settings


# Function scope: the transaction commits when the route returns, before the answer is sent, so
# a client is never told "done" about a write whose commit then fails.
DbSession = Annotated[Session, Depends(get_db_session, scope="function")]
AppSettings = Annotated[TianfuSettings, Depends(get_app_settings)]

# A row id in a path: an INTEGER column's range, so a larger number is a clear 422 on both
# databases (PostgreSQL would refuse it; SQLite would look it up).
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
