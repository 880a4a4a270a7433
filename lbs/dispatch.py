"""Answering a WeChat push: recognise retries across workers, route by kind, compose the reply.

Exactly-once per push is decided by the database: the push's dedup key is inserted with
ON CONFLICT DO NOTHING in the same transaction that computes and stores the reply. A retry that
reaches another worker while the first attempt is still working waits on that row (PostgreSQL
waits on the unique index, SQLite on its write lock) and then answers with the stored reply, so
every attempt of one push gets the same answer and its effects happen once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from lbs import replies
from lbs.client import WeChatClient, record_template_result
from lbs.coords import CoordSystem, to_gcj02
from lbs.keywords import Intent, TextIntent, interpret_text
from lbs.links import NearbyPoint, nearby_url
from lbs.locations import LocationUpdate, fresh_location
from lbs.models import InboundPush, LocationSource, ReplyDelivery
from lbs.nearby import (
    OpenVerdicts,
    StoreCards,
    category_ids_for,
    find_neighbours,
    store_details,
)
from lbs.offers import OfferLookup
from lbs.push_log import (
    SUCCESS,
    PushClaim,
    claim_push,
    claim_with_location,
    fits_one_statement,
    stored_reply,
)
from lbs.replies import ArticleDraft, NearestFar
from lbs.schemas import MAX_RADIUS_M, NearbyQuery
from lbs.wxxml import Article, IncomingMessage, news_reply, text_reply
from merchants.models import Store
from merchants.store_index import LiveStoreIndex, StoreFilter
from tianfu.orm import utcnow
from tianfu.settings import TianfuSettings

logger = logging.getLogger(__name__)

NEARBY_MENU_KEYS = frozenset({"NEARBY_OFFERS", "附近优惠", "NEARBY"})
MY_COUPONS_MENU_KEYS = frozenset({"MY_COUPONS", "我的券", "我的优惠券"})
STORE_SCENE_PREFIX = "store_"
_PRUNE_EVERY_S = 60.0
NEARBY_REPLY_LIMIT = 20  # stores a reply counts; the H5 page lists them


@dataclass(frozen=True)
class Reply:
    """What to say: a text, news articles, or nothing ("success")."""

    text: str | None = None
    articles: tuple[ArticleDraft, ...] = ()
    max_articles: int = 1

    @property
    def silent(self) -> bool:
        return self.text is None and not self.articles


SILENT = Reply()
Effect = Callable[[Session], None]


class Handoff:
    """Decides, once, who delivers the answer: the HTTP response if the reply is ready within
    the time budget, otherwise a customer-service message sent after the fact (spec §3)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "working"

    def claim_passive(self) -> bool:
        """The worker, before committing: may the reply still go back in the HTTP response?"""
        with self._lock:
            if self._state == "working":
                self._state = "passive"
            return self._state == "passive"

    def give_up(self) -> bool:
        """The HTTP handler at its deadline: True if it may answer "success" right away."""
        with self._lock:
            if self._state == "working":
                self._state = "abandoned"
            return self._state == "abandoned"


@dataclass
class PushHandler:
    settings: TianfuSettings
    session_factory: sessionmaker[Session]
    store_index: LiveStoreIndex
    offers: OfferLookup
    store_cards: StoreCards | None = None
    # PostgreSQL only: sessions in autocommit mode for the reads and the one-statement claim,
    # saving the BEGIN and COMMIT round trips on every push.
    read_session_factory: sessionmaker[Session] | None = None
    # Sends what was too slow for the passive reply; None when the account has no AppSecret.
    send_customer_message: Callable[[str, Reply], None] | None = None
    clock: Callable[[], datetime] = utcnow
    _last_prune: float = field(default=0.0, init=False)
    _open_verdicts: OpenVerdicts = field(init=False)

    def __post_init__(self) -> None:
        self._open_verdicts = OpenVerdicts(self.store_index)

    def handle(self, message: IncomingMessage, handoff: Handoff | None = None) -> str:
        """The plaintext reply XML, or "success"; safe to call for a retry of a known push.

        The reply is worked out first, holding no lock; then the push is claimed with its reply
        in one insert, and its effects (the user's last location, a template's fate) are applied
        only by the attempt whose claim won.
        """
        now = self.clock()
        effects: list[Effect] = []
        reads = self.read_session_factory or self.session_factory
        with reads() as session:  # closing it rolls back whatever is left open
            reply = self._route(session, message, now, effects)
            reply_xml = render(reply, message, now)
            delivery = _delivery(reply, handoff)
            claim = PushClaim(message, now, reply_xml, delivery)
            if self.read_session_factory is not None and fits_one_statement(effects):
                # PostgreSQL, autocommit: the claim and the location in one statement, one
                # round trip, atomic as every statement is.
                location = effects[0] if effects else None
                assert location is None or isinstance(location, LocationUpdate)
                if not claim_with_location(session, claim, location):
                    return stored_reply(session, message.dedup_key)
            else:
                session.commit()  # end the reads: see _write for why
                stored = self._write(claim, effects)
                if stored is not None:
                    return stored
        if delivery is ReplyDelivery.customer_service:
            self._send_late(message.from_user, reply)
        self._maybe_prune()
        return reply_xml if delivery is ReplyDelivery.passive else SUCCESS

    def _write(self, claim: PushClaim, effects: list[Effect]) -> str | None:
        """Claim the push and apply its effects in one transaction; the stored reply instead if
        another attempt claimed it first. The reads had their own transaction: on SQLite a WAL
        read transaction cannot turn into a write one once another process has written since
        it began (SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry)."""
        with self.session_factory() as session, session.begin():
            if not claim_push(session, claim):
                return stored_reply(session, claim.message.dedup_key)
            for effect in effects:
                effect(session)
        return None

    # -- routing -----------------------------------------------------------------------------

    def _route(
        self, session: Session, message: IncomingMessage, now: datetime, effects: list[Effect]
    ) -> Reply:
        """The reply, reading only; what the push changes is appended to `effects`."""
        if message.msg_type == "location":
            return self._on_location(session, message, now, effects)
        if message.msg_type == "text":
            return self._on_text(session, message, now)
        if message.msg_type == "event":
            return self._on_event(session, message, now, effects)
        return Reply(text=replies.UNSUPPORTED_TEXT)

    def _on_location(
        self, session: Session, message: IncomingMessage, now: datetime, effects: list[Effect]
    ) -> Reply:
        lat, lng = message.location_lat, message.location_lng
        assert lat is not None
        assert lng is not None
        # A location message is picked on WeChat's Tencent map: GCJ-02 (spec §7).
        effects.append(
            LocationUpdate(
                openid=message.from_user,
                lat_gcj02=lat,
                lng_gcj02=lng,
                source=LocationSource.message,
                reported_at=_created_at(message, now),
                label=(message.label or None) and message.label[:255],
            )
        )
        return self._nearby(session, message.from_user, lat, lng, now=now)

    def _on_text(self, session: Session, message: IncomingMessage, now: datetime) -> Reply:
        intent = interpret_text(session, message.content or "")
        if intent.kind is Intent.help:
            return Reply(text=replies.HELP_TEXT)
        if intent.kind is Intent.my_coupons:
            return Reply(text=replies.my_coupons_text(self._h5_url("/h5/me")))
        return self._nearby_from_last_location(session, message.from_user, intent, now)

    def _on_event(
        self, session: Session, message: IncomingMessage, now: datetime, effects: list[Effect]
    ) -> Reply:
        event = message.event or ""
        if event == "location":
            update = self._reported_location(message, now)
            if update is not None:
                effects.append(update)
            return SILENT  # only "success" may answer a LOCATION event (spec §4)
        if event == "subscribe":
            return self._welcome(session, message.event_key, prefix="qrscene_")
        if event == "scan":
            return self._welcome(session, message.event_key, prefix="")
        if event == "click":
            return self._on_click(session, message, now)
        if event == "location_select" and message.location_lat is not None:
            return self._on_location(session, message, now, effects)
        if event == "templatesendjobfinish":
            effects.append(partial(self._record_template_result, message=message))
        # unsubscribe, VIEW, TEMPLATESENDJOBFINISH and events we do not know: nothing to say.
        return SILENT

    def _on_click(self, session: Session, message: IncomingMessage, now: datetime) -> Reply:
        key = (message.event_key or "").strip()
        if key.upper() in NEARBY_MENU_KEYS or key in NEARBY_MENU_KEYS:
            intent = TextIntent(Intent.offers)
            return self._nearby_from_last_location(
                session,
                message.from_user,
                intent,
                now,
                max_articles=replies.MAX_ARTICLES_FOR_EVENTS,
            )
        if key.upper() in MY_COUPONS_MENU_KEYS or key in MY_COUPONS_MENU_KEYS:
            return Reply(text=replies.my_coupons_text(self._h5_url("/h5/me")))
        return Reply(text=replies.HELP_TEXT)

    def _welcome(self, session: Session, event_key: str | None, *, prefix: str) -> Reply:
        scene = (event_key or "").removeprefix(prefix)
        if scene.startswith(STORE_SCENE_PREFIX) and scene[len(STORE_SCENE_PREFIX) :].isdigit():
            # A merchant's QR code at the counter: greet the user in that store's name.
            store_name = session.scalar(
                select(Store.name).where(Store.id == int(scene[len(STORE_SCENE_PREFIX) :]))
            )
            if store_name:
                return Reply(text=f"欢迎光临{store_name}！\n{replies.HELP_TEXT}")
        return Reply(text=replies.WELCOME_TEXT if prefix else replies.HELP_TEXT)

    def _reported_location(self, message: IncomingMessage, now: datetime) -> LocationUpdate | None:
        if message.latitude is None or message.longitude is None:
            return None
        # The LOCATION event's system is undocumented: calibrated per account (spec §7).
        lat, lng = to_gcj02(
            message.latitude, message.longitude, self.settings.wechat.location_event_coord
        )
        return LocationUpdate(
            openid=message.from_user,
            lat_gcj02=lat,
            lng_gcj02=lng,
            source=LocationSource.event,
            reported_at=_created_at(message, now),
            precision_m=message.precision,
        )

    def _record_template_result(self, session: Session, *, message: IncomingMessage) -> None:
        if message.msg_id is None or not message.msg_id.isdigit():
            return
        known = record_template_result(
            session, wechat_msgid=int(message.msg_id), status=message.status or "unknown"
        )
        if not known:
            logger.warning("TEMPLATESENDJOBFINISH for an unknown msgid %s", message.msg_id)

    # -- nearby ------------------------------------------------------------------------------

    def _nearby_from_last_location(
        self,
        session: Session,
        openid: str,
        intent: TextIntent,
        now: datetime,
        *,
        max_articles: int = 1,
    ) -> Reply:
        last = fresh_location(
            session, openid, now=now, max_age_s=self.settings.wechat.location_fresh_s
        )
        if last is None:
            return Reply(text=replies.ask_for_location_text(intent.what))
        return self._nearby(
            session,
            openid,
            last.lat_gcj02,
            last.lng_gcj02,
            now=now,
            category=intent.category,
            what=intent.what,
            max_articles=max_articles,
        )

    def _nearby(
        self,
        session: Session,
        openid: str,
        lat: float,
        lng: float,
        *,
        now: datetime,
        category: str | None = None,
        what: str = "合作商户",
        max_articles: int = 1,
    ) -> Reply:
        if not self.store_index.ready:
            return Reply(text="系统正在启动，请稍等几秒后再发送一次位置。")
        radius_m = self.settings.wechat.nearby_radius_m
        query = NearbyQuery(
            lat=lat, lng=lng, radius_m=radius_m, limit=NEARBY_REPLY_LIMIT, category=category
        )
        neighbours = find_neighbours(session, self.store_index, query, now=now)
        if not neighbours:
            return Reply(text=self._nothing_nearby(session, lat, lng, category, what))
        ids = [store_id for store_id, _ in neighbours]
        best_offers = self.offers(session, store_ids=ids, openid=openid, now=now)
        # The headline: an open store with an offer, else any offer, else an open store, else
        # the nearest. Details only for the stores the reply names; the rest are counted.
        open_ids = self._open_verdicts.open_ids(ids, now)
        with_offer = next(
            (n for n in neighbours if n[0] in best_offers and n[0] in open_ids),
            next(
                (n for n in neighbours if n[0] in best_offers),
                next((n for n in neighbours if n[0] in open_ids), neighbours[0]),
            ),
        )
        wanted = neighbours[: max_articles - 1] if max_articles > 1 else [neighbours[0]]
        if with_offer not in wanted:
            wanted = [*wanted, with_offer]
        details = store_details(
            session,
            self.store_index,
            wanted,
            coord=CoordSystem.GCJ02,
            now=now,
            best_offers=best_offers,
            cards=self.store_cards,
            prefetch=ids,
        )
        if not details:  # removed between the index and the database: the next poll catches up
            return Reply(text=self._nothing_nearby(session, lat, lng, category, what))
        by_id = {store.id: store for store in details}
        featured = by_id.get(with_offer[0], details[0])
        link = nearby_url(self.settings, NearbyPoint(lat, lng, category))
        if max_articles > 1:
            shown = [
                by_id[store_id]
                for store_id, _ in neighbours[: max_articles - 1]
                if store_id in by_id
            ]
            articles = replies.store_articles(
                featured,
                shown,
                neighbours,
                offer_store_ids=best_offers.keys(),
                open_store_ids=open_ids,
                more=len(neighbours) >= NEARBY_REPLY_LIMIT,
                link=link,
            )
            return Reply(articles=tuple(articles), max_articles=max_articles)
        article = replies.location_article(
            featured,
            neighbours,
            offer_store_ids=best_offers.keys(),
            open_store_ids=open_ids,
            more=len(neighbours) >= NEARBY_REPLY_LIMIT,
            link=link,
            what=what,
        )
        return Reply(articles=(article,))

    def _nothing_nearby(
        self, session: Session, lat: float, lng: float, category: str | None, what: str
    ) -> str:
        store_filter = StoreFilter(
            category_ids=category_ids_for(session, category) if category else None
        )
        found = self.store_index.nearest(lat, lng, k=1, store_filter=store_filter)
        nearest: NearestFar | None = None
        wider_link: str | None = None
        if found:
            store_id, distance_m = found[0]
            name = session.scalar(select(Store.name).where(Store.id == store_id))
            nearest = NearestFar(name=name or "一家合作商户", distance_m=distance_m)
            if distance_m <= MAX_RADIUS_M:
                # Wide enough to include that store, rounded up to the next kilometre.
                wider = min(MAX_RADIUS_M, math.ceil(distance_m / 1000.0) * 1000)
                point = NearbyPoint(lat, lng, category, radius_m=wider)
                wider_link = nearby_url(self.settings, point)
        return replies.nothing_nearby_text(
            radius_m=self.settings.wechat.nearby_radius_m,
            nearest=nearest,
            wider_link=wider_link,
            what=what,
        )

    # -- delivery ----------------------------------------------------------------------------

    def _h5_url(self, path: str) -> str:
        return f"{self.settings.public_base_url}{path}"

    def _send_late(self, openid: str, reply: Reply) -> None:
        if self.send_customer_message is None:
            logger.warning("a late reply could not be sent: the WeChat API is not configured")
            return
        try:
            self.send_customer_message(openid, reply)
        except Exception:  # the user misses one answer; the push itself was handled
            logger.exception("sending a late reply as a customer-service message failed")

    def _maybe_prune(self) -> None:
        """Forget dedup keys past their retention, at most once a minute per worker."""
        started = time.monotonic()
        if started - self._last_prune < _PRUNE_EVERY_S:
            return
        self._last_prune = started
        cutoff = self.clock() - timedelta(seconds=self.settings.wechat.dedup_retention_s)
        with self.session_factory() as session, session.begin():
            session.execute(delete(InboundPush).where(InboundPush.received_at < cutoff))


def customer_service_sender(client: WeChatClient) -> Callable[[str, Reply], None]:
    """Late replies go out as customer-service messages: one article at most (spec §8)."""

    def send(openid: str, reply: Reply) -> None:
        if reply.articles:
            first = reply.articles[0]
            client.send_custom_news(
                openid, title=first.title, description=first.description, url=first.url
            )
        elif reply.text is not None:
            client.send_custom_text(openid, reply.text)

    return send


def _created_at(message: IncomingMessage, now: datetime) -> datetime:
    """When the user acted, by WeChat's clock; never in our future."""
    created = datetime.fromtimestamp(message.create_time, tz=now.tzinfo)
    return min(created, now)


def _delivery(reply: Reply, handoff: Handoff | None) -> ReplyDelivery:
    if reply.silent:
        return ReplyDelivery.none
    if handoff is None or handoff.claim_passive():
        return ReplyDelivery.passive
    return ReplyDelivery.customer_service


def render(reply: Reply, message: IncomingMessage, now: datetime) -> str:
    """The passive reply XML: addressed back to the user, from the account (spec §5)."""
    if reply.silent:
        return SUCCESS
    header = {"to_user": message.from_user, "from_user": message.to_user}
    created = int(now.timestamp())
    if reply.articles:
        articles = [
            Article(title=draft.title, description=draft.description, url=draft.url)
            for draft in reply.articles[: reply.max_articles]
        ]
        return news_reply(
            **header, articles=articles, create_time=created, max_articles=reply.max_articles
        )
    assert reply.text is not None
    return text_reply(**header, content=reply.text, create_time=created)
