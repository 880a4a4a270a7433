"""A coupon's QR code as an inline SVG, for the "my coupons" page a cashier scans.

Drawn by `qrcode`'s SVG path factory (pure Python: no imaging library), one <path> for all dark
modules on a white square, so the code stays scannable on a dark-mode page and costs a few KB.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import qrcode  # type: ignore[import-untyped]  # ships no type information
from qrcode.image.svg import SvgPathFillImage  # type: ignore[import-untyped]

# CSS pixels: about 5 cm on a phone, 8 px per module for the 29-module code a coupon needs
# (12 digits fit version 1 at level M: 21 modules plus the 4-module quiet zone on each side),
# which counter scanners read from arm's length.
QR_SIZE_PX = 232
# The quiet zone the QR spec requires around the symbol (ISO/IEC 18004 §6.3.8), in modules.
_QUIET_ZONE_MODULES = 4


def qr_svg(text: str, *, size_px: int = QR_SIZE_PX, label: str = "券码二维码") -> str:
    """An <svg> element encoding `text` at error correction level M (15 % of the symbol may be
    smudged or cracked on a screen and it still reads), `size_px` CSS pixels square."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=_QUIET_ZONE_MODULES,
        image_factory=SvgPathFillImage,
    )
    code.add_data(text)
    code.make(fit=True)
    image: Any = code.make_image()
    svg: ElementTree.Element = image.get_image()
    # Pixels rather than the factory's millimetres; the viewBox it set keeps the drawing scaled.
    svg.set("width", str(size_px))
    svg.set("height", str(size_px))
    svg.set("class", "qr")
    svg.set("role", "img")
    svg.set("aria-label", label)
    # Whole modules on whole pixels: no anti-aliased seams between neighbouring squares.
    svg.set("shape-rendering", "crispEdges")
    for path in svg.iter("path"):
        # The factory names its path "qr-path"; several coupons on one page would repeat the id.
        path.attrib.pop("id", None)
    return ElementTree.tostring(svg, encoding="unicode")
