from __future__ import annotations

from tianfu.errors import TianfuError


class IndexNotReadyError(TianfuError):
    status_code = 503
    code = "index_not_ready"
