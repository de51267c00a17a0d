"""Browser tests of the example apps: Debian's Chromium driven headless by Playwright (no browser download),
servers on free loopback ports, screenshots kept as test artifacts.

Screenshots go to ``$PYTEST_ARTIFACTS/examples`` (default ``tests/artifacts/examples``, ignored by git).
``PUYU_CHROMIUM`` points at another Chromium; ``PUYU_E2E_MODEL`` runs every page on that model instead of the
tiny random one (the service flow always runs on the embedded default model).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PUYU_CHROMIUM", "/usr/bin/chromium")
# the flags of the environment notes: no sandbox (root in a container), nothing phoning home on a closed network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--mute-audio", "--autoplay-policy=no-user-gesture-required"]
TINY = "tiny-random-llama"
DEFAULT = "smollm2-135m-instruct"
MAX_UPLOAD_MB = 2.0


def artifacts_dir() -> Path:
    root = Path(os.environ.get("PYTEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    out = root / "examples"
    out.mkdir(parents=True, exist_ok=True)
    return out


# package scope: the sync Playwright API keeps an event loop running in the main thread while it is
# open, and later tests that call asyncio.run() (the service voice loop) would fail beside it
@pytest.fixture(scope="package")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'puyu_apps[e2e]'")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium (scripts/setup.sh does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def samples(tmp_path_factory):
    """The apps' own sample inputs (the medical series at the tests' 128x128x40), made as the launcher makes them."""
    from examples.webapp import make_samples

    root = tmp_path_factory.mktemp("samples")
    for vertical in ("medical", "legal", "service"):
        make_samples(vertical, root, small=True)
    return root


def _server(tmp_path_factory, samples, model, **options):
    from examples.webapp import build_app
    from puyu_apps.serve import ServeConfig, ServerThread

    data = tmp_path_factory.mktemp("serve")
    options = {"service": {"db_url": f"sqlite:///{data / 'tickets.db'}"}, **options}
    config = ServeConfig(model=model, data_dir=str(data), max_upload_mb=MAX_UPLOAD_MB, require_api_key=False,
                         vertical_options=options)
    return ServerThread(config, app=build_app(config, samples)).start()


@pytest.fixture(scope="session")
def server(tmp_path_factory, samples):
    """The apps on the tiny random model (fast; the results' structure and the non-LLM parts are real)."""
    model = os.environ.get("PUYU_E2E_MODEL", TINY)
    short = {"medical": {"max_new_tokens": 40}} if model == TINY else {}  # as the medical tests run it
    srv = _server(tmp_path_factory, samples, model, **short)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def real_server(tmp_path_factory, samples):
    """The apps on the embedded default model: the real thing, end to end."""
    srv = _server(tmp_path_factory, samples, os.environ.get("PUYU_E2E_MODEL", DEFAULT))
    yield srv
    srv.stop()


class Page:
    """A browser tab on one of the apps that records script errors; ``shot(name)`` saves a screenshot."""

    def __init__(self, browser, base: str, request):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.context.set_default_timeout(120_000)  # generous: CI machines are often shared and slow
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.base = base
        self.test = request.node.name.replace("[", "-").replace("]", "")

    def open(self, path: str):
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def run(self, files=None, state: str = "done", timeout_s: float = 300):
        """Choose ``files`` (a path, or a list of paths), press the run button, wait for the page to settle."""
        page = self.page
        if files is not None:
            page.set_input_files("#file", files)
        page.click("#run")
        page.wait_for_selector(f"body[data-state={state}]", timeout=timeout_s * 1000)
        return page

    def shot(self, name: str) -> Path:
        path = artifacts_dir() / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self):
        self.context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        item.call_failed = outcome.get_result().failed


def _tab(browser, srv, request):
    t = Page(browser, srv.url, request)
    yield t
    if getattr(request.node, "call_failed", False):  # what the page showed when the test failed
        t.shot(f"FAILED-{t.test}")
    t.close()
    assert not t.errors, f"script errors on the page: {t.errors}"


@pytest.fixture
def tab(browser, server, request):
    yield from _tab(browser, server, request)


@pytest.fixture
def real_tab(browser, real_server, request):
    yield from _tab(browser, real_server, request)
