"""Routing rules are data: the first matching rule gives the channel families in order, the
payer's choice first when offered; the breaker opens after repeated unreachable calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from payments import errors
from payments.channels import PayMethod
from payments.config import DEFAULT_ROUTES, PaymentSettings, RouteRule
from payments.models import MerchantPayAccount
from payments.routing import Router, RouteRequest, families_for, method_for
from tests.builders import make_merchant

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
RULES = [
    RouteRule(client="wechat", channels=["tenpay"]),
    RouteRule(client="browser", max_amount_fen=20_000, channels=["alipay", "tenpay"]),
    RouteRule(client="browser", merchant_ids=[7], channels=["tenpay"]),
    RouteRule(client="any", channels=["tenpay", "alipay"]),
]


@pytest.mark.parametrize(
    ("client", "amount_fen", "merchant_id", "preferred", "expected"),
    [
        ("wechat", 100, 1, None, ["tenpay"]),
        ("browser", 100, 1, None, ["alipay", "tenpay"]),
        ("browser", 100, 1, "tenpay", ["tenpay", "alipay"]),
        ("browser", 20_001, 7, None, ["tenpay"]),
        ("browser", 20_001, 1, None, ["tenpay", "alipay"]),
    ],
)
def test_the_first_matching_rule_decides(
    client: str, amount_fen: int, merchant_id: int, preferred: str | None, expected: list[str]
) -> None:
    request = RouteRequest(client, amount_fen, merchant_id, preferred)  # type: ignore[arg-type]
    assert families_for(RULES, request) == expected


def test_a_choice_the_rule_does_not_offer_is_refused() -> None:
    with pytest.raises(errors.InvalidOrderError, match="不支持所选支付方式"):
        families_for(RULES, RouteRequest("wechat", 100, 1, "alipay"))


def test_no_matching_rule_means_no_way_to_pay() -> None:
    with pytest.raises(errors.ChannelNotConfiguredError):
        families_for(DEFAULT_ROUTES, RouteRequest("any", 100, 1))


def test_methods_follow_where_the_payer_is() -> None:
    assert method_for("tenpay", "wechat") is PayMethod.jsapi
    assert method_for("tenpay", "browser") is PayMethod.native
    assert method_for("alipay", "browser") is PayMethod.page


@dataclass(frozen=True)
class Named:
    """A channel as routing sees it: a name and an account (routing calls nothing else)."""

    name: str
    account: str


def _router(**settings: object) -> Router:
    channels = [Named("tenpay_v3", "1900000001"), Named("alipay", "2021000000000001")]
    return Router(channels, PaymentSettings(routes=RULES, **settings))  # type: ignore[arg-type]


def test_merchant_switches_and_amount_limits_filter_routes(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    over = RouteRequest("browser", 10_000, merchant.id)
    everything = [r.channel.name for r in _router().routes(db_session, over, NOW)]
    assert everything == ["alipay", "tenpay_v3"]
    limited = _router(channel_max_amount_fen={"alipay": 5_000})
    assert [r.channel.name for r in limited.routes(db_session, over, NOW)] == ["tenpay_v3"]
    db_session.add(MerchantPayAccount(merchant_id=merchant.id, channel="tenpay", enabled=False))
    db_session.flush()
    with pytest.raises(errors.ChannelNotConfiguredError):
        limited.routes(db_session, over, NOW)


def test_the_breaker_opens_after_repeated_failures_and_closes_after_its_cooldown(
    db_session: Session,
) -> None:
    merchant = make_merchant(db_session)
    router = _router(breaker_failures=2, breaker_cooldown_s=60)
    alipay = Named("alipay", "2021000000000001")
    request = RouteRequest("browser", 100, merchant.id)
    router.record_unreachable(db_session, alipay, "refused", NOW)  # type: ignore[arg-type]
    assert router.routes(db_session, request, NOW)[0].channel.name == "alipay"
    router.record_unreachable(db_session, alipay, "refused", NOW)  # type: ignore[arg-type]
    assert [r.channel.name for r in router.routes(db_session, request, NOW)] == ["tenpay_v3"]
    later = NOW + timedelta(seconds=61)
    assert router.routes(db_session, request, later)[0].channel.name == "alipay"
    router.record_reached(db_session, alipay, later)  # type: ignore[arg-type]
    router.record_unreachable(db_session, alipay, "refused", later)  # type: ignore[arg-type]
    assert router.routes(db_session, request, later)[0].channel.name == "alipay"
