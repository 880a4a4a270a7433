"""The `tianfu` command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cinema.cli import cinema_app
from lbs.cli import wechat_app
from merchants.cli import admin_app
from tianfu import __version__, migrate
from tianfu.cli_support import fail, settings_or_fail
from tianfu.db import engine_from_settings, make_session_factory, session_scope
from tianfu.payments_cli import jobs_app, payments_app
from tianfu.reconcile_cli import reconcile_command, settle_command
from tianfu.settings import (
    ConfigurationError,
    generate_development_env,
)

# Locals in tracebacks would print settings, secrets included.
app = typer.Typer(
    help="Tianfu: nearby merchant offers behind a WeChat Official Account.",
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).")
seed_app = typer.Typer(help="Demo and test data.")
sim_app = typer.Typer(help="Simulators of the external systems, served on loopback.")
coupons_app = typer.Typer(help="Coupon jobs.")
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(sim_app, name="sim")
app.add_typer(coupons_app, name="coupons")
app.add_typer(wechat_app, name="wechat", help="Act as WeChat: push messages to Tianfu.")
app.add_typer(jobs_app, name="jobs")
app.add_typer(payments_app, name="payments")
app.add_typer(admin_app, name="admin", help="Partner portal accounts (bank admins).")
app.add_typer(cinema_app, name="cinema", help="Cinemas: halls, films and showtimes.")
app.command("reconcile")(reconcile_command)
app.command("settle")(settle_command)

DEFAULT_SIMULATOR_PORT = 8001

console = Console(stderr=True)


@app.command()
def version() -> None:
    """Print the version."""
    print(f"tianfu {__version__}")


@app.command("dev-env")
def dev_env(
    path: Annotated[Path, typer.Option(help="Where to write it")] = Path(".env"),
) -> None:
    """Write a development .env with freshly generated secrets (never overwrites one)."""
    if path.exists():
        console.print(f"{path} exists; leaving it as it is")
        return
    path.write_text(generate_development_env(), encoding="utf-8")
    path.chmod(0o600)
    console.print(f"wrote {path} with new development secrets")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = True,
) -> None:
    """Serve the web application with uvicorn."""
    import uvicorn

    settings = settings_or_fail()  # fail here, in one line, before uvicorn starts workers
    uvicorn.run(
        "tianfu.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=access_log,
        proxy_headers=True,
    )


@sim_app.command("wechat")
def sim_wechat(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = DEFAULT_SIMULATOR_PORT,
    callback_url: Annotated[
        str | None,
        typer.Option(help="Where to push events (default: TIANFU_PUBLIC_BASE_URL + /wechat)"),
    ] = None,
) -> None:
    """The WeChat API (token, customer-service and template messages, OAuth) on loopback."""
    from lbs.simulator import serve_simulator, simulator_config_from_settings

    settings = settings_or_fail()
    try:
        config = simulator_config_from_settings(
            settings, callback_url=callback_url or f"{settings.public_base_url}/wechat"
        )
    except ConfigurationError as exc:
        fail(str(exc))
    console.print(f"WeChat simulator on http://{host}:{port} (events to {config.callback_url})")
    serve_simulator(host=host, port=port, config=config)


@sim_app.command("tenpay")
def sim_tenpay(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8002,
    notify_retry_scale: Annotated[
        float, typer.Option(min=0, help="Multiplies notify redelivery delays (0.01: 15 s → 0.15 s)")
    ] = 1.0,
    keys_dir: Annotated[
        Path | None, typer.Option(help="Keep the throwaway keys here (default: a new temp dir)")
    ] = None,
) -> None:
    """WeChat Pay API v2 and v3, a cashier page and notifies, on loopback. Keys the settings
    lack (TIANFU_TENPAY_*) are made up and written to a directory for Tianfu to use."""
    import tempfile

    from tenpay_adapter.sim_dev import development_account
    from tenpay_adapter.simulator import serve_simulator

    settings = settings_or_fail()
    directory = keys_dir or Path(tempfile.mkdtemp(prefix="tianfu-tenpay-sim-"))
    account = development_account(
        directory,
        tenpay=settings.tenpay,
        default_appid=settings.wechat.appid,
        base_url=f"http://{host}:{port}",
        retry_scale=notify_retry_scale,
    )
    if "merchant_private_key_pem" in account.from_settings:
        console.print("merchant key pair: TIANFU_TENPAY_MERCHANT_PRIVATE_KEY_PEM (from settings)")
    else:
        console.print(f"merchant private key: {account.path('merchant_key.pem')}")
        console.print(f"merchant public key:  {account.path('merchant_public_key.pem')}")
    console.print(f"platform certificate: {account.path('platform_cert.pem')}")
    console.print(f"TIANFU_TENPAY_* lines for Tianfu's .env: {account.env_path}")
    console.print(f"WeChat Pay simulator on http://{host}:{port} (mchid {account.config.mchid})")
    serve_simulator(host=host, port=port, config=account.config)


@sim_app.command("alipay")
def sim_alipay(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8003,
    notify_retry_scale: Annotated[
        float, typer.Option(min=0, help="Multiplies notify redelivery delays (0.01: 4 min → 2.4 s)")
    ] = 1.0,
    keys_dir: Annotated[
        Path | None, typer.Option(help="Keep the throwaway keys here (default: a new temp dir)")
    ] = None,
) -> None:
    """Alipay's /gateway.do, a cashier page and notifies, on loopback. Values the settings lack
    (TIANFU_ALIPAY_*) are made up and written to a directory for Tianfu to use."""
    import tempfile

    from payments.alipay.sim_dev import development_account
    from payments.alipay.simulator import serve_simulator

    settings = settings_or_fail()
    directory = keys_dir or Path(tempfile.mkdtemp(prefix="tianfu-alipay-sim-"))
    account = development_account(
        directory,
        alipay=settings.alipay,
        base_url=f"http://{host}:{port}",
        retry_scale=notify_retry_scale,
    )
    if "app_private_key_pem" in account.from_settings:
        console.print("app key pair: TIANFU_ALIPAY_APP_PRIVATE_KEY_PEM (from settings)")
    else:
        console.print(f"app private key (PKCS#1): {account.path('app_private_key.pem')}")
    console.print(f"Alipay public key: {account.path('alipay_public_key.pem')}")
    console.print(f"TIANFU_ALIPAY_* lines for Tianfu's .env: {account.env_path}")
    console.print(
        f"Alipay simulator on http://{host}:{port}/gateway.do (app_id {account.config.app_id})"
    )
    serve_simulator(host=host, port=port, config=account.config)


@coupons_app.command("expire")
def coupons_expire() -> None:
    """End offers past their validity and expire unused coupons past theirs (run it from cron;
    running it twice changes nothing the second time)."""
    from coupons.service import expire_due
    from tianfu.orm import utcnow

    engine = engine_from_settings(settings_or_fail())
    try:
        with session_scope(make_session_factory(engine)) as session:
            counts = expire_due(session, utcnow())
    finally:
        engine.dispose()
    console.print(f"expired {counts.offers} offer(s) and {counts.claims} coupon(s)")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    engine = engine_from_settings(settings_or_fail())
    migrate.upgrade(engine, revision)
    console.print(f"database at {migrate.current_revision(engine)}")
    engine.dispose()


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision")]) -> None:
    """Revert migrations down to REVISION ("base" removes every table)."""
    engine = engine_from_settings(settings_or_fail())
    migrate.downgrade(engine, revision)
    console.print(f"database at {migrate.current_revision(engine) or 'base'}")
    engine.dispose()


@db_app.command("current")
def db_current() -> None:
    """Print the revision the database is at."""
    engine = engine_from_settings(settings_or_fail())
    print(migrate.current_revision(engine) or "base")
    engine.dispose()


@seed_app.command("demo")
def seed_demo_command(
    stores: Annotated[int, typer.Option(min=0, max=9_999_999, help="How many demo stores")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data")] = (
        20261128
    ),
) -> None:
    """Build the deterministic Chengdu demo data set (re-running adds only what is missing)."""
    from tianfu.seed import DemoSeedMismatchError, seed_demo

    settings = settings_or_fail()
    engine = engine_from_settings(settings)
    if migrate.current_revision(engine) != migrate.head_revision():
        fail("the database schema is not at head: run `tianfu db upgrade` first")
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]seeding stores"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    try:
        with progress, session_scope(make_session_factory(engine)) as session:
            task = progress.add_task("stores", total=stores)
            report = seed_demo(
                session, stores=stores, seed=seed, progress=lambda n: progress.advance(task, n)
            )
            progress.update(task, completed=stores)
    except DemoSeedMismatchError as exc:
        fail(str(exc))
    engine.dispose()
    console.print(
        f"demo data: {report.stores_created} stores and {report.merchants_created} merchants "
        f"created, {report.offers_created} offers, {report.stores_total} demo stores in all "
        f"({time.perf_counter() - started:.1f} s)"
    )


def main() -> None:  # pragma: no cover - the console script entry point is `app`
    app()


@app.command()
def nearby(
    lat: Annotated[float, typer.Option(help="Latitude")],
    lng: Annotated[float, typer.Option(help="Longitude")],
    coord: Annotated[str, typer.Option(help="gcj02 | wgs84 | bd09")] = "gcj02",
    category: Annotated[str | None, typer.Option(help="Category code, e.g. hotpot")] = None,
    radius_m: Annotated[int, typer.Option(help="Search radius in metres")] = 3000,
    limit: Annotated[int, typer.Option(help="How many stores")] = 20,
    open_now: Annotated[bool, typer.Option(help="Only stores open now")] = False,
) -> None:
    """Print the stores near a point, nearest first."""
    from pydantic import ValidationError
    from rich.table import Table

    from coupons.lookup import best_offers
    from lbs.nearby import find_nearby
    from lbs.schemas import NearbyQuery
    from merchants.store_index import LiveStoreIndex
    from tianfu.errors import TianfuError

    try:
        query = NearbyQuery.model_validate(
            {"lat": lat, "lng": lng, "coord": coord, "category": category,
             "radius_m": radius_m, "limit": limit, "open_now": open_now}
        )  # fmt: skip
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        fail(f"invalid query: {problems}")
    engine = engine_from_settings(settings_or_fail())
    factory = make_session_factory(engine)
    live_index = LiveStoreIndex(factory)
    live_index.build()
    try:
        with factory() as session:
            stores = find_nearby(session, live_index, query, offers=best_offers)
    except TianfuError as exc:
        fail(exc.message)
    finally:
        engine.dispose()
    table = Table(title=f"{len(stores)} stores within {query.radius_m} m of ({lat}, {lng}) {coord}")
    for column in ("距离", "名称", "分类", "地址", "营业", "优惠"):
        table.add_column(column)
    for store in stores:
        state = "营业中" if store.open_now else "休息中"
        offer = store.best_offer.title if store.best_offer else ""
        table.add_row(
            store.distance_text, store.name, store.category.name, store.address, state, offer
        )
    Console().print(table)
