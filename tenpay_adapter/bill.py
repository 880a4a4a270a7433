"""Trade bills (`downloadbill`, spec/payment-channels.md §1.10; the v3 tradebill file is the same
format, §2.4): parsing by header name, rendering the current 27-column ALL layout.

Amounts in the file are yuan strings. They become integer fen through Decimal, never float
(§6: `int(0.29 * 100) == 28`); fees keep their five decimals as a Decimal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tenpay_adapter.errors import TenpayProtocolError
from tenpay_adapter.timefmt import format_beijing_dashed, parse_beijing_dashed

# The current (2018+) ALL layout, in order (§1.10).
HEADER: tuple[str, ...] = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
)
SUMMARY_HEADER: tuple[str, ...] = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)

# Typed field → the header names that carry it, current name first. The legacy 24-column
# layout says 总金额 and 企业红包金额 (older still: 代金券或立减优惠金额) and has no 订单金额
# or 申请退款金额; a field whose column is absent reads as 0 or ''.
_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "traded_at": ("交易时间",),
    "appid": ("公众账号ID",),
    "mchid": ("商户号",),
    "transaction_id": ("微信订单号",),
    "out_trade_no": ("商户订单号",),
    "openid": ("用户标识",),
    "trade_type": ("交易类型",),
    "trade_state": ("交易状态",),
    "amount_fen": ("应结订单金额", "总金额"),
    "coupon_fen": ("代金券金额", "企业红包金额", "代金券或立减优惠金额"),
    "refund_id": ("微信退款单号",),
    "out_refund_no": ("商户退款单号",),
    "refund_fen": ("退款金额",),
    "refund_state": ("退款状态",),
    "fee_yuan": ("手续费",),
    "order_amount_fen": ("订单金额",),
    "requested_refund_fen": ("申请退款金额",),
}
# Without these a file is not a trade bill at all.
_REQUIRED = ("traded_at", "appid", "mchid", "transaction_id", "out_trade_no", "trade_state")
_REQUIRED_AMOUNT = "amount_fen"
# Columns with no typed field: what render_bill writes when a row's raw does not say.
_UNTYPED_DEFAULTS: Mapping[str, str] = {
    "特约商户号": "0",
    "设备号": "",
    "付款银行": "",
    "货币种类": "CNY",
    "充值券退款金额": "0.00",
    "退款类型": "",
    "商品名称": "",
    "商户数据包": "",
    "费率": "",
    "费率备注": "",
}
_UNTYPED_ALIASES: Mapping[str, str] = {"特约商户号": "子商户号"}
# A row without a refund says `0 in both refund-number columns.
_NO_REFUND_ID = "0"

# Every data field is prefixed with a backtick (so Excel keeps long numbers as text).
_FIELD_SEPARATOR = ",`"
_YUAN_RE = re.compile(r"-?[0-9]{1,16}(?:\.[0-9]{1,2})?")
_FEE_RE = re.compile(r"-?[0-9]{1,16}(?:\.[0-9]{1,5})?")
_COUNT_RE = re.compile(r"[0-9]{1,12}")
_FEE_QUANTUM = Decimal("0.00001")


@dataclass(frozen=True)
class BillRow:
    traded_at: datetime  # aware UTC; the file says Beijing time
    appid: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    openid: str
    trade_type: str
    trade_state: str  # SUCCESS, REFUND (a refund is a row of its own), REVOKED …
    amount_fen: int  # 应结订单金额: the order amount less non-recharge coupons
    coupon_fen: int
    refund_id: str  # '' when the file says 0
    out_refund_no: str  # '' when the file says 0
    refund_fen: int
    refund_state: str
    fee_yuan: Decimal  # five decimals, negative on refund rows
    order_amount_fen: int  # 订单金额; 0 in the legacy layout, which lacks it
    requested_refund_fen: int  # 申请退款金额; 0 in the legacy layout
    # Header name → value as in the file (the backtick stripped). Not compared: a row is its
    # typed fields; raw only fills render_bill's untyped columns.
    raw: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Bill:
    rows: list[BillRow]
    summary: dict[str, str]  # summary header name → value
    trade_count: int
    total_fen: int  # 应结订单总金额 (legacy: 总交易额)
    refund_total_fen: int  # 退款总金额 (legacy: 总退款金额)
    fee_total_yuan: Decimal


# --- amounts -----------------------------------------------------------------------------------


def yuan_to_fen(s: str) -> int:
    """'88.88' → 8888, through Decimal; more than two decimals is refused, never rounded."""
    if not isinstance(s, str) or not _YUAN_RE.fullmatch(s):
        raise TenpayProtocolError("not a yuan amount with at most 2 decimals")
    return int(Decimal(s).scaleb(2))


def fen_to_yuan(fen: int) -> str:
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("fen must be an int")
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan}.{cents:02d}"


def parse_fee_yuan(s: str) -> Decimal:
    """A fee ('0.53000', '-0.18000') exactly, at five decimals."""
    if not isinstance(s, str) or not _FEE_RE.fullmatch(s):
        raise TenpayProtocolError("not a fee with at most 5 decimals")
    return Decimal(s).quantize(_FEE_QUANTUM)


def format_fee_yuan(fee: Decimal) -> str:
    if fee != fee.quantize(_FEE_QUANTUM):
        raise ValueError("a bill fee has at most 5 decimals")
    return f"{fee:.5f}"


# --- parsing -----------------------------------------------------------------------------------


def _data_fields(line: str, count: int, what: str) -> list[str]:
    if not line.startswith("`"):
        raise TenpayProtocolError(f"{what} line lacks the backtick prefix")
    values = line[1:].split(_FIELD_SEPARATOR)
    if len(values) != count:
        raise TenpayProtocolError(f"{what} line has {len(values)} fields, header has {count}")
    return values


def _column_for(header: Sequence[str], typed_field: str) -> str | None:
    return next((name for name in _COLUMNS[typed_field] if name in header), None)


def _check_header(header: list[str]) -> None:
    if len(set(header)) != len(header):
        raise TenpayProtocolError("repeated bill column")
    for typed_field in (*_REQUIRED, _REQUIRED_AMOUNT):
        if _column_for(header, typed_field) is None:
            raise TenpayProtocolError(f"bill header lacks {_COLUMNS[typed_field][0]}")


def _row(raw: dict[str, str]) -> BillRow:
    def text(typed_field: str) -> str:
        column = _column_for(list(raw), typed_field)
        return raw[column] if column is not None else ""

    def amount(typed_field: str) -> int:
        value = text(typed_field)
        return yuan_to_fen(value) if value else 0

    def refund_number(typed_field: str) -> str:
        value = text(typed_field)
        return "" if value == _NO_REFUND_ID else value

    fee = text("fee_yuan")
    return BillRow(
        traded_at=parse_beijing_dashed(text("traded_at")),
        appid=text("appid"),
        mchid=text("mchid"),
        transaction_id=text("transaction_id"),
        out_trade_no=text("out_trade_no"),
        openid=text("openid"),
        trade_type=text("trade_type"),
        trade_state=text("trade_state"),
        amount_fen=amount("amount_fen"),
        coupon_fen=amount("coupon_fen"),
        refund_id=refund_number("refund_id"),
        out_refund_no=refund_number("out_refund_no"),
        refund_fen=amount("refund_fen"),
        refund_state=text("refund_state"),
        fee_yuan=parse_fee_yuan(fee) if fee else Decimal(0).quantize(_FEE_QUANTUM),
        order_amount_fen=amount("order_amount_fen"),
        requested_refund_fen=amount("requested_refund_fen"),
        raw=raw,
    )


def _summary_value(summary: Mapping[str, str], *names: str) -> str:
    for name in names:
        if name in summary:
            return summary[name]
    raise TenpayProtocolError(f"bill summary lacks {names[0]}")


def parse_bill(text: str) -> Bill:
    """A trade bill in the current 27-column or the legacy 24-column layout."""
    # Split on \n only: str.splitlines would also break a product name at U+2028 or \x1c.
    lines = [line.rstrip("\r") for line in text.removeprefix("\ufeff").split("\n")]
    lines = [line for line in lines if line.strip()]
    if len(lines) < 3:
        raise TenpayProtocolError("a bill has a header, a summary header and a summary")
    header = lines[0].split(",")
    _check_header(header)
    body_end = next((i for i, line in enumerate(lines[1:], 1) if not line.startswith("`")), None)
    if body_end is None or len(lines) != body_end + 2:
        raise TenpayProtocolError("bill lacks its summary, or has lines after it")
    rows = [
        _row(dict(zip(header, _data_fields(line, len(header), "bill"), strict=True)))
        for line in lines[1:body_end]
    ]
    summary_header = lines[body_end].split(",")
    values = _data_fields(lines[body_end + 1], len(summary_header), "summary")
    summary = dict(zip(summary_header, values, strict=True))
    count = _summary_value(summary, "总交易单数")
    if not _COUNT_RE.fullmatch(count):
        raise TenpayProtocolError("总交易单数 is not a count")
    return Bill(
        rows=rows,
        summary=summary,
        trade_count=int(count),
        total_fen=yuan_to_fen(_summary_value(summary, "应结订单总金额", "总交易额")),
        refund_total_fen=yuan_to_fen(_summary_value(summary, "退款总金额", "总退款金额")),
        fee_total_yuan=parse_fee_yuan(_summary_value(summary, "手续费总金额")),
    )


# --- rendering ---------------------------------------------------------------------------------


def _row_values(row: BillRow) -> dict[str, str]:
    values = {
        name: row.raw.get(name, row.raw.get(_UNTYPED_ALIASES.get(name, ""), default))
        for name, default in _UNTYPED_DEFAULTS.items()
    }
    values.update(
        {
            "交易时间": format_beijing_dashed(row.traded_at),
            "公众账号ID": row.appid,
            "商户号": row.mchid,
            "微信订单号": row.transaction_id,
            "商户订单号": row.out_trade_no,
            "用户标识": row.openid,
            "交易类型": row.trade_type,
            "交易状态": row.trade_state,
            "应结订单金额": fen_to_yuan(row.amount_fen),
            "代金券金额": fen_to_yuan(row.coupon_fen),
            "微信退款单号": row.refund_id or _NO_REFUND_ID,
            "商户退款单号": row.out_refund_no or _NO_REFUND_ID,
            "退款金额": fen_to_yuan(row.refund_fen),
            "退款状态": row.refund_state,
            "手续费": format_fee_yuan(row.fee_yuan),
            "订单金额": fen_to_yuan(row.order_amount_fen),
            "申请退款金额": fen_to_yuan(row.requested_refund_fen),
        }
    )
    return values


def _data_line(values: Sequence[str]) -> str:
    for value in values:
        if _FIELD_SEPARATOR in value or "\n" in value or "\r" in value:
            raise ValueError("a bill value cannot hold ',`' or a line break")
    return "`" + _FIELD_SEPARATOR.join(values)


def render_bill(rows: Sequence[BillRow]) -> str:
    """The 27-column ALL bill of `rows` with its summary, CRLF line ends (the simulator's)."""
    lines = [",".join(HEADER)]
    recharge_refund_fen = 0
    for row in rows:
        values = _row_values(row)
        recharge_refund_fen += yuan_to_fen(values["充值券退款金额"])
        lines.append(_data_line([values[name] for name in HEADER]))
    totals = [
        str(len(rows)),
        fen_to_yuan(sum(row.amount_fen for row in rows)),
        fen_to_yuan(sum(row.refund_fen for row in rows)),
        fen_to_yuan(recharge_refund_fen),
        format_fee_yuan(sum((row.fee_yuan for row in rows), Decimal(0))),
        fen_to_yuan(sum(row.order_amount_fen for row in rows)),
        fen_to_yuan(sum(row.requested_refund_fen for row in rows)),
    ]
    lines += [",".join(SUMMARY_HEADER), _data_line(totals)]
    return "".join(line + "\r\n" for line in lines)
