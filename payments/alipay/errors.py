"""Errors of the pure Alipay codecs. The channel maps these onto the retryable/declined errors of
`payments.channels`; nothing here imports the rest of payments."""

from __future__ import annotations


class AlipayProtocolError(ValueError):
    """Malformed or hostile input (keys, response text, amounts, times).

    A ValueError so callers validating input can catch both alike; the message is short, never
    carries a key, and is safe to log.
    """
