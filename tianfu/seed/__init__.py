"""Generated data sets: `tianfu seed demo` fills a database with Chengdu merchants and stores."""

from tianfu.seed.demo import DEFAULT_SEED, DEFAULT_STORES, DemoStore, demo_stores
from tianfu.seed.write import DemoSeedMismatchError, SeedReport, seed_demo

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_STORES",
    "DemoSeedMismatchError",
    "DemoStore",
    "SeedReport",
    "demo_stores",
    "seed_demo",
]
