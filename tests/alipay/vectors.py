"""The Alipay test vectors of the shared spec (`../shared/spec/payment-vectors.json`, key
`alipay`).

A missing file is not a collection error: each vector test fails with MISSING instead, so the
suite says what is wrong and can never pass (or skip) without the vectors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# /work/main/tests/alipay/vectors.py → /work/shared/spec/…; CI checks both out side by side.
VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared" / "spec" / "payment-vectors.json"
MISSING = (
    f"{VECTORS_PATH} is missing: the Alipay tests need the shared spec checked out next to the "
    "repository (shared/spec/payment-vectors.json); they must not pass without it"
)

Vector = dict[str, Any]


def load_vectors() -> Vector | None:
    """The whole vector file, or None when it is missing."""
    if not VECTORS_PATH.is_file():
        return None
    vectors: Vector = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return vectors


VECTORS = load_vectors()


def alipay_vector(name: str) -> Vector:
    """One vector of `alipay`, failing the calling test when the file or the name is missing."""
    if VECTORS is None:
        pytest.fail(MISSING, pytrace=False)
    section: Vector = VECTORS["alipay"]
    assert name in section, f"alipay.{name} is not in {VECTORS_PATH}"
    found: Vector = section[name]
    return found
