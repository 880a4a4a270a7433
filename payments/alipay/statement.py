"""The daily trade bill as a `Statement` (spec §3, §6): the file behind
`alipay.data.dataservice.bill.downloadurl.query`'s URL, read by `bill.parse_bill`.

Amounts are yuan in the file and integer fen here, through Decimal (`signing.fen_of`), never
float.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date
from typing import Final

from payments.alipay.bill import KIND_REFUND, AlipayBill, BillRow, parse_bill
from payments.alipay.errors import AlipayProtocolError
from payments.channels import Statement, StatementLine

_ZIP_MAGIC: Final = b"PK\x03\x04"
_UTF8_FLAG: Final = 0x800
# A day's details of a large merchant fit easily; a zip claiming more is not a bill.
_MAX_BILL_BYTES: Final = 256 * 1024 * 1024


def read_bill(content: bytes) -> AlipayBill:
    """The downloaded file → its details table; AlipayProtocolError when it is not a bill."""
    return parse_bill(_bill_text(content))


def _bill_text(content: bytes) -> str:
    """The details CSV. Alipay serves a zip of GBK CSVs (details and a summary); the simulator
    serves the details file alone, UTF-8 (bill.py documents the layout)."""
    if content.startswith(_ZIP_MAGIC):
        content = _details_from_zip(content)
    for encoding in ("utf-8-sig", "gbk"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AlipayProtocolError("the bill is neither UTF-8 nor GBK")


def _details_from_zip(content: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            # Member names are GBK without the UTF-8 flag, which zipfile reads as cp437.
            members = [info for info in archive.infolist() if info.filename.endswith(".csv")]
            details = [m for m in members if "汇总" not in _zip_name(m)]
            if len(details) != 1:
                raise AlipayProtocolError("the bill zip has no single details file")
            if details[0].file_size > _MAX_BILL_BYTES:  # what it claims; read() checks it
                raise AlipayProtocolError("the bill is too large")
            return archive.read(details[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        raise AlipayProtocolError("the bill zip is damaged") from None


def _zip_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _statement_line(row: BillRow) -> StatementLine:
    # The bill's 服务费 is negative when charged and positive when given back with a refund;
    # StatementLine.fee_fen is the fee charged (negative on refunds), as WeChat's lines are.
    fee_fen = -row.service_fee_fen
    if row.kind == KIND_REFUND:
        return StatementLine(
            kind="refund",
            out_trade_no=row.out_trade_no,
            channel_trade_no=row.trade_no,
            amount_fen=row.refund_fen,
            channel_state=row.kind,
            at=row.finished_at,
            out_refund_no=row.out_request_no or None,
            fee_fen=fee_fen,
        )
    # 订单金额 is the trade's total, as queries and notifies report it (total_amount).
    return StatementLine(
        kind="payment",
        out_trade_no=row.out_trade_no,
        channel_trade_no=row.trade_no,
        amount_fen=row.order_amount_fen,
        channel_state=row.kind,
        at=row.finished_at,
        fee_fen=fee_fen,
    )


def statement(channel: str, account: str, bill_date: date, bill: AlipayBill | None) -> Statement:
    """`bill` None: Alipay has no bill for the day (no trades)."""
    lines = tuple(_statement_line(row) for row in bill.rows) if bill is not None else ()
    return Statement(channel=channel, account=account, bill_date=bill_date, lines=lines)
