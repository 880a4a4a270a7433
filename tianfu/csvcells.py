"""CSV cells that are safe to open in a spreadsheet."""

from __future__ import annotations

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """Text a person typed (a merchant's or a store's name), made inert for spreadsheets.
    Only for text columns: amounts such as "-1.00" must stay numbers."""
    return f"'{value}" if value.startswith(_FORMULA_START) else value
