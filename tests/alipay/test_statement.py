"""The downloaded trade bill as a Statement: the simulator's plain UTF-8 CSV and Alipay's real
form, a zip of GBK CSVs with GBK member names (details plus a summary)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import pytest

from payments.alipay.bill import KIND_REFUND, KIND_TRADE, BillRow, render_bill
from payments.alipay.errors import AlipayProtocolError
from payments.alipay.statement import read_bill, statement

PAID_AT = datetime(2026, 1, 1, 4, 31, 10, tzinfo=UTC)
REFUNDED_AT = datetime(2026, 1, 1, 5, 0, 0, tzinfo=UTC)
ROWS = [
    BillRow(
        trade_no="2026010122001446881000000001",
        out_trade_no="ORD1",
        kind=KIND_TRADE,
        subject="优惠券订单",
        created_at=PAID_AT,
        finished_at=PAID_AT,
        buyer_account="159****5620",
        order_amount_fen=8888,
        received_fen=8888,
        service_fee_fen=-53,
    ),
    BillRow(
        trade_no="2026010122001446881000000001",
        out_trade_no="ORD1",
        kind=KIND_REFUND,
        subject="优惠券订单",
        created_at=PAID_AT,
        finished_at=REFUNDED_AT,
        buyer_account="159****5620",
        order_amount_fen=8888,
        received_fen=-3000,
        out_request_no="ORD1R1",
        service_fee_fen=18,
    ),
]


def _bill_text() -> str:
    return render_bill(
        ROWS, account="2088102177296610", bill_date=date(2026, 1, 1), exported_at=REFUNDED_AT
    )


def _zipped(details: bytes, *, names: tuple[str, str]) -> bytes:
    """As Alipay's files: GBK member names without the UTF-8 flag. zipfile would write UTF-8
    and set the flag, so each name is written as an ASCII stand-in of the same length and its
    bytes swapped for the GBK ones afterwards (names are not covered by the CRC)."""
    buffer = io.BytesIO()
    swaps: list[tuple[bytes, bytes]] = []
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, (name, content) in enumerate(
            ((names[0], details), (names[1], "#汇总\n".encode("gbk")))
        ):
            gbk = name.encode("gbk")
            stand_in = f"{index}".encode().ljust(len(gbk) - 4, b"_") + b".csv"
            swaps.append((stand_in, gbk))
            archive.writestr(stand_in.decode(), content)
    zipped = buffer.getvalue()
    for stand_in, gbk in swaps:
        zipped = zipped.replace(stand_in, gbk)
    return zipped


def _expected_lines() -> set[tuple[str, str, int, str | None, int, datetime]]:
    return {
        ("payment", "ORD1", 8888, None, 53, PAID_AT),
        ("refund", "ORD1", 3000, "ORD1R1", -18, REFUNDED_AT),
    }


def _lines(content: bytes) -> set[tuple[str, str, int, str | None, int, datetime]]:
    result = statement("alipay", "2021000000000001", date(2026, 1, 1), read_bill(content))
    return {
        (x.kind, x.out_trade_no, x.amount_fen, x.out_refund_no, x.fee_fen, x.at)
        for x in result.lines
    }


def test_the_plain_utf8_bill_reads_into_payment_and_refund_lines() -> None:
    assert _lines(_bill_text().encode("utf-8")) == _expected_lines()


def test_alipays_zip_of_gbk_csvs_reads_the_same() -> None:
    names = ("20880000_20260101_业务明细.csv", "20880000_20260101_业务明细(汇总).csv")
    content = _zipped(_bill_text().encode("gbk"), names=names)
    assert _lines(content) == _expected_lines()


def test_a_day_without_a_bill_is_an_empty_statement() -> None:
    empty = statement("alipay", "2021000000000001", date(2026, 1, 1), None)
    assert empty.lines == ()


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04 not really a zip",
        _zipped(b"", names=("a.csv", "b.csv")),  # two details files: which one?
        "支付宝交易号".encode("utf-16"),
        b"",
    ],
)
def test_what_is_not_a_bill_is_a_protocol_error(content: bytes) -> None:
    with pytest.raises(AlipayProtocolError):
        read_bill(content)
