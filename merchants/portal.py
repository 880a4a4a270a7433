"""The partner portal on an app: its routers, and the rendering of the gate's refusals.

Building a portal page (stores, offers, the counter, sales, API keys …):

1. Make a router with `merchants.auth.portal_router("/portal/stores")` (pages) or
   `portal_api_router()` (JSON under /api/v1/portal). Every route on it is behind the login and,
   for POST/PUT/PATCH/DELETE, the CSRF check; a route cannot forget them. Add the router to
   ROUTERS below.
2. Take who may call it as a parameter: `scope: Scope` (a merchant account), `OwnerScope`
   (owner only), `PublishingScope` (an approved merchant), `admin: BankAdmin`, `user: PortalUser`.
3. Query through the scope: `scope.stores()`, `scope.merchant_clause(Offer.merchant_id)`,
   `scope.store_clause(Redemption.store_id, Redemption.merchant_id)`, `scope.get_store(db, id)`.
   Another merchant's object is OutOfScopeError (404), never 403.
4. Read a form with `form: PortalForm` and `merchants.portal_forms.parse_form(Model, form)`
   (Chinese messages per field; answer 422 with the form shown again). Call the service inside
   `with db.begin_nested():` and catch TianfuError, so a refused change leaves nothing behind.
5. Record every change with `merchants.auth.audit(db, request, action="store.created",
   target=store, detail={...})`, and add the action to `merchants.audit.ACTION_LABELS`.
6. Render with `merchants.portal_web.render(request, "portal/x.html", context, user=...)`; the
   template extends "portal/base.html", forms carry `csrf_token`, answers to posts are
   `see_other(...)`. The dashboard's link to the page (portal_web.NAV_LINKS) lights up by itself.
7. Add the routes to MATRIX in tests/merchants/test_authz_matrix.py (it fails until you do).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from merchants import (
    merchant_api,
    portal_admin,
    portal_api,
    portal_api_keys,
    portal_bank,
    portal_counter,
    portal_offers,
    portal_pages,
    portal_sales,
    portal_staff,
    portal_stores,
    portal_tickets,
)
from merchants.errors import PortalAccessError
from merchants.portal_web import handle_portal_access_error

ROUTERS: tuple[APIRouter, ...] = (
    portal_pages.public,
    portal_pages.router,
    portal_admin.router,
    portal_staff.router,
    portal_api.router,
    portal_stores.router,
    portal_stores.api,
    portal_api_keys.router,
    merchant_api.router,  # /api/v1/merchant: API keys, not the portal's session
    portal_offers.router,
    portal_bank.router,
    portal_counter.router,
    portal_tickets.router,  # the counter's film tickets, at a cinema's entrance
    portal_sales.router,
)


def install_portal(app: FastAPI) -> None:
    """Call after `install_error_handlers`: this handler is more specific than TianfuError's."""
    app.add_exception_handler(PortalAccessError, handle_portal_access_error)
    for router in ROUTERS:
        app.include_router(router)
