"""`tianfu admin …`: portal accounts from the command line. `tianfu admin create --username U`
makes a bank admin (the first one cannot be made through the portal, which only admins enter)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from merchants import accounts
from merchants import audit as audit_log
from merchants.models import PortalRole
from merchants.passwords import hasher_for
from tianfu import migrate
from tianfu.cli_support import fail, settings_or_fail
from tianfu.db import engine_from_settings, make_session_factory, session_scope
from tianfu.errors import TianfuError

admin_app = typer.Typer(
    help="Partner portal accounts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would print settings, secrets included
)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        # One line, for scripts: printf "%s\n" "$PW" | tianfu admin create -u ops --password-stdin
        return sys.stdin.readline().rstrip("\r\n")
    first = typer.prompt("密码", hide_input=True)
    second = typer.prompt("再次输入密码", hide_input=True)
    if first != second:
        fail("the two passwords differ")
    return str(first)


@admin_app.command("create")
def create(
    username: Annotated[str, typer.Option("--username", "-u", help="Login name")],
    display_name: Annotated[str, typer.Option(help="Name shown in the portal")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Create a bank admin of the partner portal (prompts twice for the password)."""
    settings = settings_or_fail()
    engine = engine_from_settings(settings)
    try:
        if migrate.current_revision(engine) != migrate.head_revision():
            fail("the database schema is not at head: run `tianfu db upgrade` first")
        password = _password(password_stdin)
        with session_scope(make_session_factory(engine)) as session:
            account = accounts.create_account(
                session,
                username=username,
                password=password,
                role=PortalRole.bank_admin,
                hasher=hasher_for(settings.portal),
                display_name=display_name,
            )
            actor = audit_log.Actor(None, f"cli:{getpass.getuser()}"[:64], "local")
            audit_log.record(
                session,
                actor=actor,
                action="account.created",
                target=account,
                detail={"role": account.role.value, "username": account.username},
            )
            created = account.username
    except TianfuError as exc:
        fail(exc.message)
    finally:
        engine.dispose()
    print(f"bank admin {created} created")
