"""tenpay_adapter.bill against `wechat_v2.downloadbill_all_sample`, a legacy 24-column bill
built here, and render/parse round trips (spec/payment-channels.md §1.10, §6 "Fen vs yuan")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenpay_adapter.bill import (
    HEADER,
    SUMMARY_HEADER,
    BillRow,
    fen_to_yuan,
    format_fee_yuan,
    parse_bill,
    parse_fee_yuan,
    render_bill,
    yuan_to_fen,
)
from tenpay_adapter.errors import TenpayProtocolError
from tests.tenpay.vectors import v2_vector

# The pre-2018 ALL layout: 24 columns, 总金额/企业红包金额, a 5-field summary. The rows follow
# the shape of public 2015 samples; the amounts are this test's own.
LEGACY_BILL = (
    "交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,总金额,企业红包金额,微信退款单号,商户退款单号,退款金额,企业红包退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率\r\n"
    "`2015-03-30 21:25:32,`wx58aea38c0796394d,`10027619,`0,`,`1009360611201503300040393756,"
    "`20150330212520177109431,`oqMIVt3Ouq-2Vm0kZOZmZ2rTDlP8,`JSAPI,`SUCCESS,`CFT,`CNY,`0.29,"
    "`0.05,`0,`0,`0,`0,`,`,`洁面慕斯,`,`0.00170,`0.60%\r\n"
    "`2015-03-30 22:00:00,`wx58aea38c0796394d,`10027619,`0,`,`1009360611201503300040393756,"
    "`20150330212520177109431,`oqMIVt3Ouq-2Vm0kZOZmZ2rTDlP8,`JSAPI,`REFUND,`CFT,`CNY,`0.00,"
    "`0.00,`2009360611201503300000000001,`RF150330001,`0.10,`0.00,`ORIGINAL,`SUCCESS,`洁面慕斯,"
    "`,`-0.00060,`0.60%\r\n"
    "总交易单数,总交易额,总退款金额,总企业红包退款金额,手续费总金额\r\n"
    "`2,`0.29,`0.10,`0.00,`0.00110\r\n"
)


def _sample_text() -> str:
    text: str = v2_vector("downloadbill_all_sample")["text"]
    return text


def _row(**changes: object) -> BillRow:
    values: dict[str, object] = {
        "traded_at": datetime(2024, 3, 1, 2, 3, 4, tzinfo=UTC),
        "appid": "wx2421b1c4370ec43b",
        "mchid": "10000100",
        "transaction_id": "4200002024030110030400000001",
        "out_trade_no": "ORD20240301100304001",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "amount_fen": 1999,
        "coupon_fen": 0,
        "refund_id": "",
        "out_refund_no": "",
        "refund_fen": 0,
        "refund_state": "",
        "fee_yuan": Decimal("0.12000"),
        "order_amount_fen": 1999,
        "requested_refund_fen": 0,
    }
    values.update(changes)
    return BillRow(**values)  # type: ignore[arg-type]


# --- the vector --------------------------------------------------------------------------------


def test_downloadbill_sample_totals() -> None:
    v = v2_vector("downloadbill_all_sample")
    expected = v["expected"]
    bill = parse_bill(v["text"])
    assert len(bill.rows) == expected["rows"]
    assert bill.trade_count == expected["rows"]
    assert bill.total_fen == yuan_to_fen(expected["settle_total"]) == 8888
    assert bill.refund_total_fen == yuan_to_fen(expected["refund_total"]) == 3000
    assert bill.fee_total_yuan == Decimal(expected["fee_total"])
    assert str(bill.fee_total_yuan) == expected["fee_total"]
    assert bill.summary["订单总金额"] == expected["order_total"]
    assert bill.summary["申请退款总金额"] == expected["apply_refund_total"]
    assert list(bill.summary) == list(SUMMARY_HEADER)


def test_downloadbill_sample_rows_add_up_to_the_summary() -> None:
    bill = parse_bill(_sample_text())
    assert sum(row.amount_fen for row in bill.rows) == bill.total_fen
    assert sum(row.refund_fen for row in bill.rows) == bill.refund_total_fen
    assert sum(row.fee_yuan for row in bill.rows) == bill.fee_total_yuan
    assert sum(row.order_amount_fen for row in bill.rows) == yuan_to_fen(bill.summary["订单总金额"])


def test_downloadbill_sample_payment_row() -> None:
    payment = parse_bill(_sample_text()).rows[0]
    assert payment == _row(
        traded_at=datetime(2024, 1, 1, 4, 32, 10, tzinfo=UTC),
        mchid="10000100",
        transaction_id="4200002024010112321000000001",
        out_trade_no="ORD20240101123045001",
        trade_type="JSAPI",
        amount_fen=8888,
        fee_yuan=Decimal("0.53000"),
        order_amount_fen=8888,
    )
    assert payment.raw["商品名称"] == "Coupon order - Lakeside Cafe"
    assert payment.raw["费率"] == "0.60%"
    assert payment.raw["微信退款单号"] == "0"
    assert list(payment.raw) == list(HEADER)


def test_downloadbill_sample_refund_row() -> None:
    refund = parse_bill(_sample_text()).rows[1]
    assert refund.trade_state == "REFUND"
    assert refund.traded_at == datetime(2024, 1, 1, 7, 0, 0, tzinfo=UTC)
    assert refund.amount_fen == 0
    assert refund.refund_id == "50000000002024010200000000001"
    assert refund.out_refund_no == "RF20240102000001"
    assert (refund.refund_fen, refund.requested_refund_fen) == (3000, 3000)
    assert refund.refund_state == "SUCCESS"
    assert refund.fee_yuan == Decimal("-0.18000")
    assert refund.order_amount_fen == 8888
    assert refund.raw["退款类型"] == "ORIGINAL"


def test_rendering_the_parsed_sample_gives_the_sample_back() -> None:
    assert render_bill(parse_bill(_sample_text()).rows) == _sample_text()


def test_columns_are_found_by_name_not_position() -> None:
    lines = _sample_text().split("\r\n")
    order = list(reversed(range(len(HEADER))))

    def reorder(line: str, separator: str) -> str:
        fields = line.removeprefix("`").split(separator)
        prefix = "`" if line.startswith("`") else ""
        return prefix + separator.join(fields[i] for i in order)

    shuffled = [reorder(lines[0], ","), *(reorder(line, ",`") for line in lines[1:3]), *lines[3:]]
    assert parse_bill("\r\n".join(shuffled)).rows == parse_bill(_sample_text()).rows


def test_a_byte_order_mark_and_bare_newlines_are_accepted() -> None:
    text = "\ufeff" + _sample_text().replace("\r\n", "\n")
    assert parse_bill(text).rows == parse_bill(_sample_text()).rows


# --- legacy layout ------------------------------------------------------------------------------


def test_legacy_24_column_bill_parses_by_name() -> None:
    bill = parse_bill(LEGACY_BILL)
    payment, refund = bill.rows
    assert payment.traded_at == datetime(2015, 3, 30, 13, 25, 32, tzinfo=UTC)
    assert payment.amount_fen == 29  # 总金额 0.29: the float bug would give 28
    assert payment.coupon_fen == 5  # 企业红包金额
    assert payment.fee_yuan == Decimal("0.00170")
    assert (payment.refund_id, payment.out_refund_no) == ("", "")
    # Columns the legacy layout lacks read as zero.
    assert (payment.order_amount_fen, payment.requested_refund_fen) == (0, 0)
    assert refund.refund_fen == 10
    assert refund.out_refund_no == "RF150330001"
    assert (bill.trade_count, bill.total_fen, bill.refund_total_fen) == (2, 29, 10)
    assert bill.fee_total_yuan == Decimal("0.00110")
    assert len(payment.raw) == 24


def test_legacy_rows_render_in_the_current_layout() -> None:
    legacy = parse_bill(LEGACY_BILL)
    current = parse_bill(render_bill(legacy.rows))
    assert current.rows == legacy.rows
    assert current.rows[0].raw["特约商户号"] == "0"  # from 子商户号
    assert current.rows[0].raw["商品名称"] == "洁面慕斯"
    assert current.total_fen == legacy.total_fen
    assert current.fee_total_yuan == legacy.fee_total_yuan


# --- round trips ---------------------------------------------------------------------------------


def test_rows_built_by_a_simulator_round_trip() -> None:
    rows = [
        _row(),
        _row(coupon_fen=100, amount_fen=1899, fee_yuan=Decimal("0.11000")),
        _row(
            traded_at=datetime(2024, 3, 1, 16, 0, 0, tzinfo=UTC),  # 00:00 the next day, Beijing
            trade_state="REFUND",
            amount_fen=0,
            refund_id="50000000002024030200000000001",
            out_refund_no="RF1",
            refund_fen=1999,
            refund_state="PROCESSING",
            fee_yuan=Decimal("-0.12000"),
            requested_refund_fen=1999,
        ),
    ]
    text = render_bill(rows)
    bill = parse_bill(text)
    assert bill.rows == rows
    assert (bill.trade_count, bill.total_fen, bill.refund_total_fen) == (3, 3898, 1999)
    assert bill.fee_total_yuan == Decimal("0.11000")
    assert "`2024-03-02 00:00:00," in text
    assert render_bill(bill.rows) == text


def test_an_empty_bill_round_trips() -> None:
    bill = parse_bill(render_bill([]))
    assert bill.rows == []
    assert (bill.trade_count, bill.total_fen, bill.fee_total_yuan) == (0, 0, Decimal(0))


def test_render_refuses_values_that_would_split_a_field() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        render_bill([_row(out_trade_no="A,`B")])
    with pytest.raises(ValueError, match="cannot hold"):
        render_bill([_row(raw={"商品名称": "two\r\nlines"})])


def test_render_refuses_fees_beyond_five_decimals() -> None:
    with pytest.raises(ValueError, match="5 decimals"):
        render_bill([_row(fee_yuan=Decimal("0.123456"))])


def test_render_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        render_bill([_row(traded_at=datetime(2024, 3, 1))])  # noqa: DTZ001


# --- amounts -------------------------------------------------------------------------------------


def test_0_29_yuan_is_29_fen() -> None:
    assert int(0.29 * 100) == 28  # the float bug of §6, for the record
    assert yuan_to_fen("0.29") == 29


@pytest.mark.parametrize(
    ("text", "expected"),
    [("88.88", 8888), ("0.00", 0), ("0", 0), ("1.5", 150), ("30.00", 3000), ("-0.18", -18)],
)
def test_yuan_to_fen(text: str, expected: int) -> None:
    assert yuan_to_fen(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1.234",
        "0.001",
        "",
        "1.",
        ".5",
        "1,000.00",
        "¥1.00",
        "NaN",
        "Infinity",
        "1e2",
        " 1.00",
        "+1",
    ],
)
def test_yuan_to_fen_refuses(text: str) -> None:
    with pytest.raises(TenpayProtocolError):
        yuan_to_fen(text)


@pytest.mark.parametrize(
    ("fen", "text"), [(8888, "88.88"), (0, "0.00"), (5, "0.05"), (-18, "-0.18")]
)
def test_fen_to_yuan(fen: int, text: str) -> None:
    assert fen_to_yuan(fen) == text


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_yuan_and_fen_round_trip(fen: int) -> None:
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


def test_fees_keep_five_decimals() -> None:
    assert parse_fee_yuan("0.53") == Decimal("0.53000")
    assert format_fee_yuan(parse_fee_yuan("0.53")) == "0.53000"
    assert format_fee_yuan(parse_fee_yuan("-0.18000")) == "-0.18000"
    with pytest.raises(TenpayProtocolError):
        parse_fee_yuan("0.123456")


def test_a_row_amount_with_three_decimals_refuses_the_bill() -> None:
    text = _sample_text().replace("`88.88,`0.00,`0,", "`88.885,`0.00,`0,", 1)
    assert text != _sample_text()
    with pytest.raises(TenpayProtocolError, match="2 decimals"):
        parse_bill(text)


# --- malformed bills ----------------------------------------------------------------------------


def _without_line(index: int) -> str:
    lines = _sample_text().split("\r\n")
    del lines[index]
    return "\r\n".join(lines)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "<xml><return_code>FAIL</return_code></xml>", id="xml-failure"),
        pytest.param(lambda t: _without_line(4), id="no-summary-values"),
        pytest.param(lambda t: _without_line(3), id="no-summary-header"),
        pytest.param(lambda t: t + "`trailing\r\n", id="lines-after-summary"),
        pytest.param(lambda t: t.replace(",`0.60%,", ",`0.60%,`extra,", 1), id="extra-field"),
        pytest.param(lambda t: t.replace("\r\n`2024", "\r\n2024", 1), id="no-backtick"),
        pytest.param(lambda t: t.replace("商户订单号", "商户单号", 1), id="missing-column"),
        pytest.param(lambda t: t.replace("设备号", "商户号", 1), id="repeated-column"),
        pytest.param(lambda t: t.replace("`2024-01-01 12:32:10", "`2024-01-01", 1), id="bad-time"),
        pytest.param(lambda t: t.replace("`2,`88.88", "`two,`88.88", 1), id="bad-count"),
        pytest.param(lambda t: t.replace("`0.53000", "`0.530001", 1), id="bad-fee"),
        pytest.param(lambda t: t.replace("总交易单数", "交易单数", 1), id="summary-lacks-count"),
    ],
)
def test_malformed_bills_are_refused(make: Callable[[str], str]) -> None:
    with pytest.raises(TenpayProtocolError):
        parse_bill(make(_sample_text()))
