"""Signed, expiring links for the H5 pages that WeChat replies point to.

A reply's link carries the point the user sent; signing it means nobody can hand out links that
look like ours for other points, and the expiry keeps old chat history from opening stale pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from lbs.errors import LinkExpiredError, LinkInvalidError
from tianfu.settings import ConfigurationError, TianfuSettings

_NEARBY_SALT = "tianfu.h5.nearby"


@dataclass(frozen=True)
class NearbyPoint:
    lat_gcj02: float
    lng_gcj02: float
    category: str | None = None
    # A wider radius than the default, for "nothing near you: look further" links.
    radius_m: int | None = None


def _serializer(settings: TianfuSettings) -> URLSafeTimedSerializer:
    if settings.secret_key is None:
        raise ConfigurationError("TIANFU_SECRET_KEY is needed to sign H5 links (tianfu dev-env)")
    return _serializer_for(settings.secret_key.get_secret_value())


@lru_cache(maxsize=4)
def _serializer_for(secret_key: str) -> URLSafeTimedSerializer:
    # Deriving the signing key is the costly part of signing; one serializer per key.
    return URLSafeTimedSerializer(secret_key, salt=_NEARBY_SALT)


def nearby_token(settings: TianfuSettings, point: NearbyPoint) -> str:
    payload = [round(point.lat_gcj02, 6), round(point.lng_gcj02, 6), point.category, point.radius_m]
    return str(_serializer(settings).dumps(payload))


def nearby_url(settings: TianfuSettings, point: NearbyPoint) -> str:
    query = urlencode({"t": nearby_token(settings, point)})
    return f"{settings.public_base_url}/h5/nearby?{query}"


def read_nearby_token(settings: TianfuSettings, token: str) -> NearbyPoint:
    try:
        payload = _serializer(settings).loads(token, max_age=settings.wechat.h5_link_ttl_s)
    except SignatureExpired:
        raise LinkExpiredError("this link has expired; send your location again") from None
    except BadSignature:
        raise LinkInvalidError("this link is not valid") from None
    try:
        lat, lng, category, radius_m = payload
        return NearbyPoint(
            float(lat),
            float(lng),
            None if category is None else str(category),
            None if radius_m is None else int(radius_m),
        )
    except (TypeError, ValueError):
        raise LinkInvalidError("this link is not valid") from None
