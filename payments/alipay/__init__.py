"""Alipay open platform as a payment channel (spec/payment-channels.md §3): codecs in `signing`,
settings in `config`, the channel in `client`."""
