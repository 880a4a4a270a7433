"""What every `tianfu` subcommand shares, whichever package defines it."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from tianfu.settings import ConfigurationError, TianfuSettings, get_settings


def fail(message: str, code: int = 2) -> NoReturn:
    # One line, no traceback: this is what an operator sees when a setting is wrong.
    print(f"tianfu: {message}", file=sys.stderr)
    raise typer.Exit(code)


def settings_or_fail() -> TianfuSettings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        fail(str(exc))
