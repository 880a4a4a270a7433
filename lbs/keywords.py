"""What a user means by the words they type to the Official Account."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants.models import Category

NEARBY_WORDS = ("附近", "周边", "周围", "nearby", "near me")
OFFER_WORDS = ("优惠", "折扣", "打折", "活动", "offers")
MY_COUPON_WORDS = ("我的券", "我的优惠券", "我的卡券", "卡券", "领的券")
HELP_WORDS = ("帮助", "help", "?", "？", "菜单")
_MAX_INTERPRETED_LENGTH = 40  # a longer text is a conversation, not a keyword


class Intent(StrEnum):
    nearby = "nearby"
    offers = "offers"
    category = "category"
    my_coupons = "my_coupons"
    help = "help"


@dataclass(frozen=True)
class TextIntent:
    kind: Intent
    category: str | None = None
    # How the reply names what was asked for: "火锅店", "优惠商户"
    what: str = "合作商户"


def _normalise(content: str) -> str:
    # Full-width letters and digits (ｃｏｆｆｅｅ) are common from Chinese keyboards.
    return unicodedata.normalize("NFKC", content).strip().lower()


def interpret_text(session: Session, content: str) -> TextIntent:
    text = _normalise(content)
    if not text or len(text) > _MAX_INTERPRETED_LENGTH:
        return TextIntent(Intent.help)
    if any(word in text for word in MY_COUPON_WORDS):
        return TextIntent(Intent.my_coupons)
    category = _category_in(session, text)
    if category is not None:
        code, name = category
        return TextIntent(Intent.category, category=code, what=name)
    if any(word in text for word in OFFER_WORDS):
        return TextIntent(Intent.offers, what="优惠商户")
    if any(word in text for word in NEARBY_WORDS):
        return TextIntent(Intent.nearby)
    return TextIntent(Intent.help)


def _category_in(session: Session, text: str) -> tuple[str, str] | None:
    """The category whose longest keyword appears in the text ("附近的串串香" → 火锅)."""
    best: tuple[int, str, str] | None = None
    for code, name_zh, keywords in session.execute(
        select(Category.code, Category.name_zh, Category.keywords)
    ):
        for word in [name_zh, *keywords]:  # not the code: "tea" is in "steak"
            word = _normalise(word)
            if word and word in text and (best is None or len(word) > best[0]):
                best = (len(word), code, name_zh)
    return None if best is None else (best[1], best[2])
