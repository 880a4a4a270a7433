from __future__ import annotations

from tianfu.errors import TianfuError


class IndexNotReadyError(TianfuError):
    status_code = 503
    code = "index_not_ready"


class LinkInvalidError(TianfuError):
    status_code = 403
    code = "link_invalid"


class LinkExpiredError(TianfuError):
    status_code = 410
    code = "link_expired"
