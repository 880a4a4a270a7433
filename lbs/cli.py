"""`tianfu wechat …`: play WeChat against a running Tianfu (spec/wechat-official-account.md §3-§6).

`tianfu wechat send --location 30.6574,104.0658` builds the XML WeChat would push when a user
shares that position, signs (and in safe mode encrypts) it, POSTs it with WeChat's 5 s / 3 tries,
and prints the reply as the phone would show it.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.text import Text

from lbs.wechat_push import (
    SERVICE_UNAVAILABLE_TEXT,
    EncryptMode,
    PushClient,
    PushFailedError,
    PushResult,
    event_xml,
    location_message_xml,
    render_for_user,
    text_message_xml,
)
from lbs.wxcrypto import WeChatDecryptError, WeChatSignatureError, WXBizMsgCrypt
from lbs.wxxml import XmlRejectedError
from tianfu.cli_support import fail, settings_or_fail
from tianfu.settings import TianfuSettings

# Stable and fake, 28 characters like a real OpenID, so repeated runs are one "user".
DEFAULT_OPENID = "oTianfuCliUser00000000000000"
FALLBACK_ACCOUNT_ID = "gh_000000000000"
# WeChat's sample reports precisions around 100 m; any plausible value will do.
_CLI_PRECISION = "65.000000"

wechat_app = typer.Typer(
    help="Play WeChat: push a user's message or event to the callback URL and show the reply.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would print settings, secrets included
)


@wechat_app.callback()
def _group() -> None:
    # A callback keeps `send` a subcommand even while it is the only one.
    pass


def _lat_lng(text: str, option: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        lat, lng = (float(part) for part in parts)
    except ValueError:
        fail(f"{option} takes LAT,LNG in decimal degrees, got {text!r}")
    # The order is latitude first, as WeChat's Location_X is (spec §4).
    if not (math.isfinite(lat) and math.isfinite(lng) and abs(lat) <= 90 and abs(lng) <= 180):
        fail(f"{option}: latitude must be within ±90 and longitude within ±180, got {text!r}")
    return lat, lng


def _event_fields(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """`NAME[:ARGUMENT]` → the event name, its EventKey and its own fields."""
    name, _, argument = spec.partition(":")
    if not name:
        fail("--event needs a name: subscribe, CLICK:KEY, SCAN:SCENE, LOCATION:LAT,LNG …")
    kind = name.lower()
    if kind == "location":
        lat, lng = _lat_lng(argument, "--event LOCATION:")
        position = {"Latitude": f"{lat:.6f}", "Longitude": f"{lng:.6f}"}
        return name, None, {**position, "Precision": _CLI_PRECISION}
    if kind in ("scan", "subscribe") and argument:
        # A parametric QR code: subscribe carries qrscene_<scene>, SCAN the bare scene (spec §4).
        key = f"qrscene_{argument}" if kind == "subscribe" else argument
        return name, key, {"Ticket": f"gQTianfuCli{secrets.token_hex(8)}"}
    return name, argument or None, {}


def _message_xml(
    *,
    location: str | None,
    text: str | None,
    event: str | None,
    label: str,
    openid: str,
    to_user: str,
) -> str:
    chosen = [option for option in (location, text, event) if option is not None]
    if len(chosen) != 1:
        fail("give exactly one of --location, --text or --event")
    now = int(time.time())
    # WeChat's MsgIds are 64-bit integers of about 17 digits (spec §4).
    msg_id = secrets.randbelow(9 * 10**16) + 10**16
    if location is not None:
        lat, lng = _lat_lng(location, "--location")
        return location_message_xml(
            to_user=to_user, from_user=openid, lat=lat, lng=lng, label=label, msg_id=msg_id,
            create_time=now,
        )  # fmt: skip
    if text is not None:
        return text_message_xml(
            to_user=to_user, from_user=openid, content=text, msg_id=msg_id, create_time=now
        )
    name, event_key, extra = _event_fields(str(event))
    return event_xml(
        to_user=to_user, from_user=openid, event=name, create_time=now, event_key=event_key,
        extra=extra,
    )  # fmt: skip


def _crypt(settings: TianfuSettings, mode: EncryptMode) -> WXBizMsgCrypt | None:
    wechat = settings.wechat
    key, appid, token = wechat.aes_key, wechat.appid, wechat.token
    if key is None or appid is None or token is None:
        if mode is not EncryptMode.plaintext:
            fail(f"--encrypt {mode} needs TIANFU_WECHAT_ENCODING_AES_KEY and TIANFU_WECHAT_APPID")
        return None
    return WXBizMsgCrypt(token=token.get_secret_value(), aes_key=key, appid=appid)


def _deliver(client: PushClient, message_xml: str) -> PushResult:
    try:
        return client.send(message_xml)
    except PushFailedError as exc:
        fail(f"{client.url}: {exc}", code=1)
    except WeChatSignatureError:
        fail("the reply's MsgSignature does not match: WeChat would drop it", code=1)
    except WeChatDecryptError as exc:
        fail(f"the reply does not decrypt: {exc}", code=1)
    except XmlRejectedError as exc:
        Console(soft_wrap=True, highlight=False).print(Text(SERVICE_UNAVAILABLE_TEXT))
        fail(f"the reply is not reply XML ({exc.reason}): WeChat shows the user an error", code=1)


def _tell_simulator(settings: TianfuSettings, *, openid: str, event: str | None) -> None:
    """In development the WeChat API is `tianfu sim wechat`, which cannot see this push: tell it
    the user acted, so a late reply may go out as a customer-service message, as with WeChat.
    Best effort: only a loopback API host is told, and silence from it changes nothing."""
    base = settings.wechat.api_base_url
    if not base.startswith(("http://127.0.0.1", "http://localhost")):
        return
    kind = "message"
    if event is not None:
        name = event.split(":", 1)[0].lower()
        kind = {"subscribe": "subscribe", "click": "click", "scan": "scan"}.get(name, "")
    if not kind:
        return  # LOCATION and VIEW events open no customer-service window (spec §8)
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"{base}/sim/interactions", json={"openid": openid, "kind": kind}, timeout=1.0)


@wechat_app.command("send")
def send(
    location: Annotated[
        str | None, typer.Option(help="Share a position: LAT,LNG (GCJ-02), e.g. 30.6574,104.0658")
    ] = None,
    text: Annotated[str | None, typer.Option(help="Send a text message, e.g. 附近")] = None,
    event: Annotated[
        str | None,
        typer.Option(help="subscribe | CLICK:附近优惠 | SCAN:scene | LOCATION:lat,lng | VIEW:url"),
    ] = None,
    encrypt: Annotated[
        EncryptMode | None,
        typer.Option(help="Default: safe when an EncodingAESKey is configured, else plaintext"),
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="Callback URL (default: TIANFU_PUBLIC_BASE_URL + /wechat)")
    ] = None,
    openid: Annotated[str, typer.Option(help="The user's OpenID")] = DEFAULT_OPENID,
    label: Annotated[str, typer.Option(help="Address text of a --location")] = "",
) -> None:
    """Push what a user does, as WeChat would, and print the reply as the phone shows it."""
    settings = settings_or_fail()
    token = settings.wechat.token
    if token is None:
        fail("TIANFU_WECHAT_TOKEN is not set (run `tianfu dev-env` for development secrets)")
    to_user = settings.wechat.account_id or FALLBACK_ACCOUNT_ID
    message_xml = _message_xml(
        location=location, text=text, event=event, label=label, openid=openid, to_user=to_user
    )
    mode = encrypt or (
        EncryptMode.safe if settings.wechat.encoding_aes_key is not None else EncryptMode.plaintext
    )
    _tell_simulator(settings, openid=openid, event=event)
    client = PushClient(
        url=to or f"{settings.public_base_url}/wechat",
        token=token.get_secret_value(),
        mode=mode,
        crypt=_crypt(settings, mode),
        account_id=to_user,
    )
    with client:
        result = _deliver(client, message_xml)
    out = Console(soft_wrap=True, highlight=False)
    out.print(Text(render_for_user(result.reply_xml)))
    out.print(
        Text(
            f"{result.attempts} attempt(s), {result.elapsed_s * 1000:.0f} ms, "
            f"HTTP {result.status_code}, {mode} mode",
            style="dim",
        )
    )
