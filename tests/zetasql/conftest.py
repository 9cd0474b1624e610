"""One ZetaSQL analyzer per test session (the first start ever compiles it: about a minute)."""

from __future__ import annotations

import os

import pytest

from tests.zetasql import Checker, checker


@pytest.fixture(scope="session")
def zeta() -> Checker:
    """The session's analyzer. Without zetasql installed the tests skip, except in CI (CI=true), where they fail."""
    try:
        import wasmtime  # noqa: F401 - only whether it imports
        import zetasql  # noqa: F401 - only whether it imports
    except ImportError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"zetasql is not installed ({error}); `./dev setup` installs it with the dev extra")
    return checker()
