"""Headless Chromium for the H5 and portal pages: Debian's chromium driven by Playwright, phone
sized, every request that leaves loopback aborted and recorded, script errors collected.

The `browser` fixture (tests/conftest.py, one per test module) launches it with `launch`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Route, ViewportSize, sync_playwright

PHONE: ViewportSize = {"width": 390, "height": 844}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
)


@contextmanager
def launch() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


class Outside:
    """Aborts (and records) every request that leaves loopback."""

    def __init__(self) -> None:
        self.blocked: list[str] = []

    def __call__(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()


def no_horizontal_overflow(page: Page) -> bool:
    return bool(
        page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


@dataclass
class Phone:
    page: Page
    outside: Outside
    console_errors: list[str]


@contextmanager
def logged_in_phones(
    browser: Browser, base: str, cookie_of: Callable[[str], str]
) -> Iterator[Callable[[str], Phone]]:
    """Opens phone-sized pages logged in as a user, as the OAuth callback would leave them:
    `open_as(openid)`; `cookie_of(openid)` is the session cookie's "name=value". Script errors
    (uncaught, or a CSP refusal on the console) are collected; all is closed on exit."""
    contexts: list[BrowserContext] = []

    def open_as(openid: str) -> Phone:
        outside = Outside()
        context = browser.new_context(viewport=PHONE, locale="zh-CN")
        contexts.append(context)
        context.route("**/*", outside)
        name, _, value = cookie_of(openid).partition("=")
        context.add_cookies([{"name": name, "value": value, "url": base}])
        page = context.new_page()
        errors: list[str] = []

        def on_console(message: Any) -> None:
            # A CSP refusal or a script error; not the note on an HTTP error answer.
            if message.type == "error" and not message.text.startswith("Failed to load"):
                errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        return Phone(page, outside, errors)

    try:
        yield open_as
    finally:
        for context in contexts:
            context.close()
