"""The trade bill file (`payments.alipay.bill`): what the simulator renders, the channel parses
back, row for row; and the real file's quirks the parser tolerates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from payments.alipay.bill import (
    HEADER,
    KIND_REFUND,
    KIND_TRADE,
    BillRow,
    format_money,
    parse_bill,
    parse_money,
    render_bill,
)
from payments.alipay.errors import AlipayProtocolError

PAID_AT = datetime(2026, 1, 1, 4, 31, 10, tzinfo=UTC)  # 12:31:10 in Beijing
CREATED_AT = datetime(2026, 1, 1, 4, 31, 2, tzinfo=UTC)
REFUNDED_AT = datetime(2026, 1, 1, 5, 0, 0, tzinfo=UTC)


def payment(**overrides: object) -> BillRow:
    values: dict[str, object] = {
        "trade_no": "2026010122001446881000000001",
        "out_trade_no": "ORD1",
        "kind": KIND_TRADE,
        "subject": "优惠券订单",
        "created_at": CREATED_AT,
        "finished_at": PAID_AT,
        "buyer_account": "159****5620",
        "order_amount_fen": 8888,
        "received_fen": 8888,
        "service_fee_fen": -53,
    }
    return BillRow(**(values | overrides))  # type: ignore[arg-type]


def refund_row() -> BillRow:
    return payment(
        kind=KIND_REFUND,
        finished_at=REFUNDED_AT,
        received_fen=-3000,
        out_request_no="RF1",
        service_fee_fen=18,
        remark="顾客退票",
    )


def render(rows: list[BillRow]) -> str:
    return render_bill(
        rows,
        account="2088102177296610",
        bill_date=date(2026, 1, 1),
        exported_at=datetime(2026, 1, 2, 1, 0, tzinfo=UTC),
    )


def test_a_rendered_bill_parses_back_row_for_row() -> None:
    rows = [payment(), refund_row()]
    bill = parse_bill(render(rows))
    assert bill.rows == rows
    assert bill.account == "2088102177296610"
    assert (bill.paid_total_fen, bill.refund_total_fen) == (8888, 3000)
    assert [row.refund_fen for row in bill.rows] == [0, 3000]


def test_the_file_is_the_documented_layout() -> None:
    lines = render([payment(), refund_row()]).split("\r\n")
    assert lines[0] == "#支付宝业务明细查询"
    assert lines[2] == "#起始日期：[2026年01月01日 00:00:00]   终止日期：[2026年01月02日 00:00:00]"
    assert lines[4] == ",".join(HEADER)
    assert len(HEADER) == 25
    assert lines[5].startswith(
        "2026010122001446881000000001,ORD1,交易,优惠券订单,2026-01-01 12:31:02,2026-01-01 12:31:10,"
    )
    assert lines[5].endswith(
        ",159****5620,88.88,88.88,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,-0.53,0.00,"
    )
    assert ",88.88,-30.00," in lines[6]
    assert lines[6].endswith(",RF1,0.18,0.00,顾客退票")
    assert lines[8:11] == [
        "#交易合计：1笔，商家实收：88.88元，服务费：-0.53元",
        "#退款合计：1笔，商家实收：-30.00元，服务费：0.18元",
        "#导出时间：[2026年01月02日 09:00:00]",
    ]


def test_commas_quotes_and_line_breaks_in_a_subject_survive_as_one_row() -> None:
    odd = payment(subject='套餐, 两人 "双人"\n第二行')
    [parsed] = parse_bill(render([odd])).rows
    assert parsed.subject == '套餐, 两人 "双人" 第二行'


def test_padded_cells_and_reordered_columns_are_read_by_name() -> None:
    text = (
        "#账号：[2088102177296610]\n"
        "商家实收（元）,完成时间,业务类型,商户订单号,支付宝交易号\n"
        "\t88.88\t,2026-01-01 12:31:10,交易,ORD1 ,\t2026010122001446881000000001\n"
    )
    [row] = parse_bill(text).rows
    assert (row.received_fen, row.out_trade_no, row.finished_at) == (8888, "ORD1", PAID_AT)
    assert (row.order_amount_fen, row.created_at) == (0, None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "#only comments\n",
        "支付宝交易号,商户订单号\n",  # no 业务类型, 完成时间 …
        ",".join(HEADER) + "\nonly,three,cells\n",
        ",".join(HEADER) + "\n" + ",".join(["x"] * 25) + "\n",  # 业务类型 x
    ],
)
def test_what_is_not_a_bill_is_refused(text: str) -> None:
    with pytest.raises(AlipayProtocolError):
        parse_bill(text)


@pytest.mark.parametrize(
    ("fen", "text"), [(0, "0.00"), (29, "0.29"), (-3000, "-30.00"), (8888, "88.88")]
)
def test_signed_money_round_trips_through_decimal(fen: int, text: str) -> None:
    assert (format_money(fen), parse_money(text)) == (text, fen)


def test_money_cells_with_three_decimals_are_refused() -> None:
    with pytest.raises(AlipayProtocolError):
        parse_money("0.291")
