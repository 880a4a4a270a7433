"""What the Official Account says back, in words a WeChat user expects (pure: no database).

WeChat shows only ONE news article in a reply to a user's message, and up to 8 in a reply to an
event such as a menu click (spec §5), so a location gets one card that links to the full list.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from lbs.nearby import distance_text
from lbs.schemas import NearbyStoreRead

MAX_ARTICLES_FOR_EVENTS = 8

WELCOME_TEXT = (
    "欢迎关注！这里有您身边合作商户的专属优惠。\n"
    "点击输入框旁的「+」→「位置」发送您的位置，即可查看附近的优惠商户；"
    "也可以直接回复「美食」「火锅」「咖啡」「超市」「电影」等关键词。"
)
HELP_TEXT = (
    "您可以：\n"
    "· 发送位置，查看附近的优惠商户\n"
    "· 回复「附近」「优惠」，或「美食」「火锅」「咖啡」「超市」「电影」等品类\n"
    "· 回复「我的券」查看已领取的优惠券"
)
ASK_FOR_LOCATION_TEXT = (
    "还不知道您在哪里～请点击输入框旁的「+」→「位置」发送您的位置，我们马上为您找附近的{what}。"
)
UNSUPPORTED_TEXT = "暂时无法识别这类消息。" + HELP_TEXT


@dataclass(frozen=True)
class ArticleDraft:
    """A news article before the link is known to be signed; mirrors the XML item."""

    title: str
    description: str
    url: str


@dataclass(frozen=True)
class NearestFar:
    """The closest store when nothing is within the radius."""

    name: str
    distance_m: float


def _open_text(store: NearbyStoreRead) -> str:
    return "营业中" if store.open_now else "已打烊"


def _title(featured: NearbyStoreRead, total: int, *, more: bool, what: str) -> str:
    if featured.best_offer is not None:
        return f"{featured.name}：{featured.best_offer.title}（{featured.distance_text}）"
    count = f"{total}多家" if more else f"{total}家"
    return f"附近{count}{what}，{featured.name}距您{featured.distance_text}"


def location_article(
    featured: NearbyStoreRead,
    neighbours: Sequence[tuple[int, float]],
    *,
    offer_store_ids: Collection[int],
    open_store_ids: Collection[int],
    link: str,
    more: bool = False,
    what: str = "合作商户",
) -> ArticleDraft:
    """One card: the featured store (the nearest with an offer, else the nearest) as the
    headline, the other stores found summarised by count and distance, a link to them all."""
    lines = []
    if featured.best_offer is not None:
        lines.append(featured.best_offer.explanation)
    lines.append(f"{featured.name} · {featured.category.name} · {_open_text(featured)}")
    others = [(store_id, metres) for store_id, metres in neighbours if store_id != featured.id]
    if others:
        nearest, farthest = distance_text(others[0][1]), distance_text(others[-1][1])
        span = nearest if len(others) == 1 else f"{nearest}至{farthest}"
        summary = f"另有{len(others)}家在{span}内"
        details = []
        open_now = sum(1 for store_id, _ in others if store_id in open_store_ids)
        if open_now:
            details.append(f"{open_now}家营业中")
        with_offers = sum(1 for store_id, _ in others if store_id in offer_store_ids)
        if with_offers:
            details.append(f"{with_offers}家有优惠")
        if details:
            summary += "，" + "、".join(details)
        lines.append(summary)
    lines.append("点击查看更多商户和地图" if more else "点击查看全部商户和地图")
    return ArticleDraft(
        title=_title(featured, len(neighbours), more=more, what=what),
        description="\n".join(lines),
        url=link,
    )


def store_articles(
    featured: NearbyStoreRead,
    shown: Sequence[NearbyStoreRead],
    neighbours: Sequence[tuple[int, float]],
    *,
    offer_store_ids: Collection[int],
    open_store_ids: Collection[int],
    link: str,
    more: bool = False,
) -> list[ArticleDraft]:
    """Cards for a menu click (up to 8): the overview card first, then one per store."""
    overview = location_article(
        featured,
        neighbours,
        offer_store_ids=offer_store_ids,
        open_store_ids=open_store_ids,
        link=link,
        more=more,
    )
    articles = [overview]
    for store in shown[: MAX_ARTICLES_FOR_EVENTS - 1]:
        offer = f"｜{store.best_offer.title}" if store.best_offer is not None else ""
        articles.append(
            ArticleDraft(
                title=f"{store.name} {store.distance_text}{offer}",
                description=f"{store.category.name} · {_open_text(store)} · {store.address}",
                url=link,
            )
        )
    return articles


def nothing_nearby_text(
    *, radius_m: int, nearest: NearestFar | None, wider_link: str | None, what: str = "合作商户"
) -> str:
    text = f"您附近{distance_text(radius_m)}内暂时没有{what}。"
    if nearest is None:
        return text + "我们正在努力拓展商户，敬请期待。"
    text += f"离您最近的是{nearest.name}，约{distance_text(nearest.distance_m)}。"
    if wider_link:
        text += f'\n<a href="{wider_link}">查看更大范围的商户</a>'
    return text


def ask_for_location_text(what: str = "优惠商户") -> str:
    return ASK_FOR_LOCATION_TEXT.format(what=what)


def my_coupons_text(link: str) -> str:
    return f'<a href="{link}">点击查看我的优惠券</a>（需在微信内打开）'
