"""The Alipay trade bill (`alipay.data.dataservice.bill.downloadurl.query`, bill_type=trade, one
Beijing day): what the simulator serves and what the channel reconciles against. Pure.

Alipay's real download is a zip of GBK CSV files; the simulator serves the details file alone,
as plain UTF-8 CSV (RFC 4180 quoting, CRLF line ends), keeping the real file's `#` comment lines
around the table. Exactly this, for a day with one payment and one partial refund (each row is
one line; wrapped here):

    #支付宝业务明细查询
    #账号：[2088102177296610]
    #起始日期：[2026年01月01日 00:00:00]   终止日期：[2026年01月02日 00:00:00]
    #-----------------------------------------业务明细列表----------------------------------------
    支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注
    2026010122001446881000000001,ORD1,交易,优惠券订单,2026-01-01 12:31:02,
        2026-01-01 12:31:10,,,,,159****5620,88.88,88.88,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,
        -0.53,0.00,
    2026010122001446881000000001,ORD1,退款,优惠券订单,2026-01-01 12:31:02,
        2026-01-01 13:00:00,,,,,159****5620,88.88,-30.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,RF1,
        0.18,0.00,
    #-----------------------------------------业务明细列表结束------------------------------------
    #交易合计：1笔，商家实收：88.88元，服务费：-0.53元
    #退款合计：1笔，商家实收：-30.00元，服务费：0.18元
    #导出时间：[2026年01月02日 09:00:00]

- 业务类型 is 交易 (a payment, 完成时间 = gmt_payment) or 退款 (one refund request; 完成时间 =
  gmt_refund, 退款批次号/请求号 = its out_request_no, 商家实收 negative).
- 订单金额 is always the trade's total; 商家实收 is what moved in that row.
- 服务费 is negative when charged (payments) and positive when returned (refunds).
- Times are Beijing wall time with no offset; amounts are yuan with two decimals.

`parse_bill` reads the table by header name (columns may come in any order, cells may carry the
real file's padding tabs) and ignores every `#` line; totals are computed from the rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final

from payments.alipay.errors import AlipayProtocolError
from payments.alipay.signing import beijing_timestamp, fen_of, parse_beijing, yuan

KIND_TRADE: Final = "交易"
KIND_REFUND: Final = "退款"

HEADER: tuple[str, ...] = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
)
# Columns with a typed field on BillRow; the rest are kept in `raw`, amounts defaulting to 0.00.
_TYPED: Final = frozenset(
    {
        "支付宝交易号",
        "商户订单号",
        "业务类型",
        "商品名称",
        "创建时间",
        "完成时间",
        "对方账户",
        "订单金额（元）",
        "商家实收（元）",
        "退款批次号/请求号",
        "服务费（元）",
        "备注",
    }
)
_REQUIRED: Final = ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "商家实收（元）")
_ZERO_RE = re.compile(r"-?0(?:\.0{1,2})?")
_LIST_START = "#" + "-" * 41 + "业务明细列表" + "-" * 40
_LIST_END = "#" + "-" * 41 + "业务明细列表结束" + "-" * 36
_ACCOUNT_RE = re.compile(r"#账号：\[([0-9]+)\]")


@dataclass(frozen=True)
class BillRow:
    trade_no: str
    out_trade_no: str
    kind: str  # KIND_TRADE or KIND_REFUND
    subject: str
    created_at: datetime | None  # aware UTC; the file says Beijing time
    finished_at: datetime
    buyer_account: str  # 对方账户, masked (159****5620)
    order_amount_fen: int  # the trade's total, on refund rows too
    received_fen: int  # 商家实收: positive for a payment, negative for a refund
    out_request_no: str = ""  # refund rows: the refund's out_request_no
    service_fee_fen: int = 0  # negative: charged; positive: returned with a refund
    remark: str = ""
    # Header name → cell text of the untyped columns (门店编号, 支付宝红包（元）…). Not compared.
    raw: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def refund_fen(self) -> int:
        """What a refund row gave back (0 for payment rows)."""
        return -self.received_fen if self.kind == KIND_REFUND else 0


@dataclass(frozen=True)
class AlipayBill:
    rows: list[BillRow]
    account: str  # the seller's 2088… PID from `#账号：[…]`, '' when absent

    @property
    def payments(self) -> list[BillRow]:
        return [row for row in self.rows if row.kind == KIND_TRADE]

    @property
    def refunds(self) -> list[BillRow]:
        return [row for row in self.rows if row.kind == KIND_REFUND]

    @property
    def paid_total_fen(self) -> int:
        return sum(row.received_fen for row in self.payments)

    @property
    def refund_total_fen(self) -> int:
        return sum(row.refund_fen for row in self.refunds)


# --- signed money ------------------------------------------------------------------------------


def format_money(fen: int) -> str:
    """Signed fen → '-30.00', '0.00', '88.88' (a bill cell; request amounts use `yuan`)."""
    if fen == 0:
        return "0.00"
    return ("-" if fen < 0 else "") + yuan(abs(fen))


def parse_money(text: str) -> int:
    """A bill cell → signed fen; '' and '0.00' are 0. Through `fen_of`: never float."""
    if text == "" or _ZERO_RE.fullmatch(text):
        return 0
    negative = text.startswith("-")
    fen = fen_of(text[1:] if negative else text)
    return -fen if negative else fen


# --- parsing -----------------------------------------------------------------------------------


def _table_lines(text: str) -> tuple[list[str], str]:
    account = ""
    kept: list[str] = []
    # Split on \n only: str.splitlines would also break a product name at U+2028.
    for line in text.removeprefix("\ufeff").split("\n"):
        line = line.rstrip("\r")
        if line.startswith("#"):
            found = _ACCOUNT_RE.match(line)
            account = found.group(1) if found else account
        elif line.strip():
            kept.append(line)
    return kept, account


def _row(cells: dict[str, str]) -> BillRow:
    kind = cells["业务类型"]
    if kind not in (KIND_TRADE, KIND_REFUND):
        raise AlipayProtocolError(f"unknown 业务类型 {kind!r}")
    created = cells.get("创建时间", "")
    return BillRow(
        trade_no=cells["支付宝交易号"],
        out_trade_no=cells["商户订单号"],
        kind=kind,
        subject=cells.get("商品名称", ""),
        created_at=parse_beijing(created) if created else None,
        finished_at=parse_beijing(cells["完成时间"]),
        buyer_account=cells.get("对方账户", ""),
        order_amount_fen=parse_money(cells.get("订单金额（元）", "")),
        received_fen=parse_money(cells["商家实收（元）"]),
        out_request_no=cells.get("退款批次号/请求号", ""),
        service_fee_fen=parse_money(cells.get("服务费（元）", "")),
        remark=cells.get("备注", ""),
        raw={name: value for name, value in cells.items() if name not in _TYPED},
    )


def parse_bill(text: str) -> AlipayBill:
    """The details table of a trade bill; AlipayProtocolError when it is not one."""
    lines, account = _table_lines(text)
    if not lines:
        raise AlipayProtocolError("a bill has a header line")
    try:
        records = list(csv.reader(lines, strict=True))
    except csv.Error as exc:
        raise AlipayProtocolError(f"malformed bill line: {exc}") from None
    # Real files pad cells with tabs and spaces; no value of ours starts or ends with either.
    header = [name.strip() for name in records[0]]
    if len(set(header)) != len(header):
        raise AlipayProtocolError("repeated bill column")
    missing = [name for name in _REQUIRED if name not in header]
    if missing:
        raise AlipayProtocolError(f"bill header lacks {missing[0]}")
    rows: list[BillRow] = []
    for record in records[1:]:
        if len(record) != len(header):
            raise AlipayProtocolError(f"bill row has {len(record)} cells, header {len(header)}")
        rows.append(_row({name: cell.strip() for name, cell in zip(header, record, strict=True)}))
    return AlipayBill(rows=rows, account=account)


# --- rendering ---------------------------------------------------------------------------------


def _cells(row: BillRow) -> list[str]:
    typed = {
        "支付宝交易号": row.trade_no,
        "商户订单号": row.out_trade_no,
        "业务类型": row.kind,
        "商品名称": row.subject,
        "创建时间": beijing_timestamp(row.created_at) if row.created_at else "",
        "完成时间": beijing_timestamp(row.finished_at),
        "对方账户": row.buyer_account,
        "订单金额（元）": format_money(row.order_amount_fen),
        "商家实收（元）": format_money(row.received_fen),
        "退款批次号/请求号": row.out_request_no,
        "服务费（元）": format_money(row.service_fee_fen),
        "备注": row.remark,
    }
    cells = []
    for name in HEADER:
        default = "0.00" if name.endswith("（元）") else ""
        value = typed[name] if name in typed else row.raw.get(name, default)
        # One record per line: the parser splits lines before reading cells.
        cells.append(value.replace("\r", " ").replace("\n", " "))
    return cells


def _chinese_day(day: date) -> str:
    return f"{day.year}年{day.month:02d}月{day.day:02d}日 00:00:00"


def _summary(title: str, rows: Sequence[BillRow]) -> str:
    received = format_money(sum(row.received_fen for row in rows))
    fee = format_money(sum(row.service_fee_fen for row in rows))
    return f"#{title}合计：{len(rows)}笔，商家实收：{received}元，服务费：{fee}元"


def render_bill(
    rows: Sequence[BillRow], *, account: str, bill_date: date, exported_at: datetime
) -> str:
    """The file described above; `exported_at` must be aware."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(_cells(row))
    exported = beijing_timestamp(exported_at)
    stamp = f"{exported[:4]}年{exported[5:7]}月{exported[8:10]}日 {exported[11:]}"
    head = [
        "#支付宝业务明细查询",
        f"#账号：[{account}]",
        f"#起始日期：[{_chinese_day(bill_date)}]   "
        f"终止日期：[{_chinese_day(bill_date + timedelta(days=1))}]",
        _LIST_START,
        ",".join(HEADER),
    ]
    tail = [
        _LIST_END,
        _summary("交易", [row for row in rows if row.kind == KIND_TRADE]),
        _summary("退款", [row for row in rows if row.kind == KIND_REFUND]),
        f"#导出时间：[{stamp}]",
    ]
    return "\r\n".join(head) + "\r\n" + out.getvalue() + "\r\n".join(tail) + "\r\n"
