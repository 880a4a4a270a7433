"""Coupon codes: 12 digits, read out at a counter as "4821 0937 5516".

Eleven digits come from `secrets` (10^11 codes, about 36.5 bits: a guess hits one of a million
live coupons once in 100,000 tries, and every guess must also pass a counter's login); the
twelfth is a Damm check digit. Damm's quasigroup catches every single wrong digit and every swap
of two neighbouring digits, the two mistakes people make reading a code aloud or typing it, so a
typo is refused before any lookup instead of redeeming someone else's coupon. Digits only: a
cashier's keypad and the WeChat keyboard both have them, and no 0/O or 1/I confusion is possible.

No QR image here: the `qrcode` package is not a dependency yet.
"""

from __future__ import annotations

import secrets
import unicodedata

CODE_LENGTH = 12
_RANDOM_DIGITS = CODE_LENGTH - 1
_GROUP = 4

# The totally anti-symmetric quasigroup of order 10 from Damm's thesis (2004).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

# What people put between groups when they type or paste a code.
_SEPARATORS = str.maketrans("", "", " -_.\t\u3000")


def damm_digit(digits: str) -> int:
    """The interim digit after `digits`; it is the check digit to append, and 0 for a valid code."""
    interim = 0
    for char in digits:
        interim = _DAMM[interim][ord(char) - 48]
    return interim


def new_code() -> str:
    body = f"{secrets.randbelow(10**_RANDOM_DIGITS):0{_RANDOM_DIGITS}d}"
    return body + str(damm_digit(body))


def normalise_code(text: str) -> str:
    """Separators dropped; full-width digits (a Chinese IME's "１２３") folded to ASCII by NFKC."""
    return unicodedata.normalize("NFKC", text).translate(_SEPARATORS)


def is_valid_code(text: str) -> bool:
    code = normalise_code(text)
    # isascii() first: str.isdigit() also accepts superscripts and other scripts' digits.
    if len(code) != CODE_LENGTH or not (code.isascii() and code.isdigit()):
        return False
    return damm_digit(code) == 0


def format_code(code: str) -> str:
    """Grouped for reading aloud: "482109375516" -> "4821 0937 5516"."""
    return " ".join(code[i : i + _GROUP] for i in range(0, len(code), _GROUP))
