"""What the WeChat side keeps in the database, so that every worker process agrees on it:
which pushes were already answered (and with what), each user's last position, the shared access
token, and the fate of template messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tianfu.orm import Base, UTCDateTime, enum_column, model_repr, utcnow


class ReplyDelivery(StrEnum):
    passive = "passive"  # in the HTTP response to WeChat's push
    customer_service = "customer_service"  # too slow for the 5 s window: sent afterwards
    none = "none"  # nothing to say ("success"), e.g. a LOCATION event


class LocationSource(StrEnum):
    message = "message"  # the user sent a location message
    event = "event"  # the LOCATION event WeChat reports when the chat opens
    h5 = "h5"  # JS-SDK getLocation on an H5 page


class InboundPush(Base):
    """One row per distinct push from WeChat; its unique key is how retries are recognised
    across workers, and the stored reply is what a retry gets back."""

    __tablename__ = "wechat_inbound"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "msgid:<MsgId>" or "event:<FromUserName>:<CreateTime>:<Event>" (spec §3)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    msg_type: Mapped[str] = mapped_column(String(32))
    event: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # The plaintext reply XML (or "success"); re-encrypted per request when the retry is.
    reply_xml: Mapped[str] = mapped_column(Text)
    delivery: Mapped[ReplyDelivery] = mapped_column(enum_column(ReplyDelivery, "reply_delivery"))

    def __repr__(self) -> str:
        return model_repr(self, "id", "dedup_key", "delivery")


class UserLocation(Base):
    """A user's last known position, always stored in GCJ-02 whatever its source's system."""

    __tablename__ = "wechat_user_locations"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    lat_gcj02: Mapped[float] = mapped_column(Float)
    lng_gcj02: Mapped[float] = mapped_column(Float)
    precision_m: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[LocationSource] = mapped_column(enum_column(LocationSource, "location_source"))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return model_repr(self, "openid", "lat_gcj02", "lng_gcj02", "source")


class WeChatCredential(Base):
    """Short-lived credentials every worker shares (access_token, jsapi_ticket): fetching a new
    access token invalidates the old one, so there must be exactly one cache (spec §8)."""

    __tablename__ = "wechat_credentials"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A worker refreshing the credential holds this lease; the others wait for its result.
    refreshing_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:  # never the value: it is a secret
        return model_repr(self, "name", "expires_at")


class TemplateSend(Base):
    """A template message (account-change notice) and what became of it: WeChat answers the send
    with a msgid and reports delivery later in a TEMPLATESENDJOBFINISH event."""

    __tablename__ = "wechat_template_sends"
    __table_args__ = (Index("ix_wechat_template_sends_wechat_msgid", "wechat_msgid", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    template_id: Mapped[str] = mapped_column(String(64))
    # Our idempotency key, passed on to WeChat as client_msg_id.
    client_msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    wechat_msgid: Mapped[int | None] = mapped_column(BigInteger)
    # "pending" until sent, "sent" until WeChat reports, then WeChat's Status text verbatim
    # ("success", "failed:user block", "failed: system failed").
    status: Mapped[str] = mapped_column(String(64), default="pending")
    error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return model_repr(self, "id", "client_msg_id", "status")
