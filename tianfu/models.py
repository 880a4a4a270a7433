"""Every table of every domain, imported in one place for Alembic and the test fixtures."""

from merchants.changes import StoreChange, StoreChangeCounter
from merchants.models import Category, Merchant, Store
from tianfu.orm import Base

__all__ = ["Base", "Category", "Merchant", "Store", "StoreChange", "StoreChangeCounter"]
