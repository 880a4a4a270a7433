from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from lbs.errors import IndexNotReadyError
from lbs.nearby import find_nearby
from lbs.schemas import NearbyQuery, NearbyResponse
from merchants.store_index import LiveStoreIndex
from tianfu.deps import DbSession

router = APIRouter(prefix="/api/v1", tags=["nearby"])


@router.get("/nearby", response_model=NearbyResponse)
def nearby(
    request: Request, session: DbSession, query: Annotated[NearbyQuery, Query()]
) -> NearbyResponse:
    live_index: LiveStoreIndex = request.app.state.store_index
    if not live_index.ready:
        raise IndexNotReadyError("the store index is still being built; retry in a moment")
    stores = find_nearby(
        session,
        live_index,
        query,
        offers=request.app.state.offer_lookup,
        cards=request.app.state.store_cards,
    )
    return NearbyResponse(query=query, stores=stores)
