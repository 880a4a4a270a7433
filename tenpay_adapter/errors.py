"""Errors of the pure WeChat Pay codecs. Nothing here imports our other packages: the adapter's
HTTP layer maps these onto the channel's retryable/declined errors."""

from __future__ import annotations


class TenpayProtocolError(ValueError):
    """Malformed or hostile input (XML, base64, padding, amounts, times, headers).

    A ValueError so callers validating input can catch both alike; the message is short, never
    carries a key or a plaintext, and is safe to log.
    """
