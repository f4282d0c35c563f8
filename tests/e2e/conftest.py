"""Browser fixtures: Playwright driving Debian's Chromium against pytest-django's live_server.

Never ``playwright install`` (it downloads a browser): ``make test`` installs the ``chromium``
package and the tests launch ``/usr/bin/chromium`` (or ``$WARLOCK_TEST_CHROMIUM``).
Screenshots go to ``tests/artifacts/screenshots/django-<major.minor>`` (the admin is drawn
differently by each Django: ``make test`` leaves 5.2's, ``make test-matrix`` 6.1's beside
them), or to ``$WARLOCK_SCREENSHOT_DIR``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django
import pytest

from tests.services import CHROMIUM
from tests.users import PASSWORD, make_staff_user

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT_DIR = Path(
    os.environ.get("WARLOCK_SCREENSHOT_DIR")
    or Path(__file__).resolve().parents[1]
    / "artifacts"
    / "screenshots"
    / "django-{}.{}".format(*django.VERSION[:2])
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Playwright's sync API runs an asyncio loop on this
    thread while it is started, so it is stopped after each browser module (the rest of the
    suite runs its own event loops), and Django's async-safety check, which would refuse the
    test's own ORM calls while that loop runs, is relaxed for these modules only."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} not found: `make test` installs Debian's chromium "
            "(apt-get install chromium), or set WARLOCK_TEST_CHROMIUM"
        )
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) whose relative URLs go to the live server."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1600, "height": 1000}
    )
    context.set_default_timeout(15_000)
    # The admin's navigation sidebar starts collapsed: more room for the tables.
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def staff_user(transactional_db: None) -> Callable[..., Any]:
    """``staff_user("ops", "resume_snapshot", "view_snapshot")``: a staff user with exactly
    those ``warlock_ai`` permissions (``superuser=True`` for all of them)."""
    return make_staff_user


@pytest.fixture
def login(page: Any) -> Callable[[Any], Any]:
    """Log ``user`` in through the admin's login form; returns the page."""

    def do(user: Any) -> Any:
        page.goto("/admin/login/?next=/admin/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")
        return page

    return do


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """``screenshot(page, "runs-list")`` saves a full-page PNG and returns its path."""

    def take(pg: Any, name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"screenshot {path} is suspiciously small"
        return path

    return take
