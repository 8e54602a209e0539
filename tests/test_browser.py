"""The web page in real headless Chromium, against the deployed sentiment app (`sagelocal up` style).

With SAGELOCAL_WEB_URL set (tox -e e2e against a running stack), the page at that URL is used;
otherwise the app is deployed on the session's emulator and the page served on a free port.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from workflows import imdb_web_app
from workflows.target import TargetSettings, open_target
from workflows.webpage import PageServer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
POSITIVE = (
    "An absolutely wonderful film. Brilliant acting, a moving story, I loved every minute of it. Great!"
)
NEGATIVE = (
    "Awful, boring and stupid. The worst movie I have seen: terrible acting and a waste of time and money."
)


@pytest.fixture(scope="module")
def page_url(emulator, tmp_path_factory):
    if os.environ.get("SAGELOCAL_WEB_URL"):
        yield os.environ["SAGELOCAL_WEB_URL"]
        return
    settings = TargetSettings(name="local", endpoint_url=emulator.url)
    with open_target(settings, log=lambda *_: None) as target:
        app, _, _ = imdb_web_app.deploy(target, tmp_path_factory.mktemp("imdb"), log=lambda *_: None)
        with PageServer(app.api_url, port=0) as page:
            yield page.url


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def submit(page, url: str, review: str) -> tuple[str, str]:
    page.goto(url)
    page.fill("#review", review)
    page.click("#submit")
    page.wait_for_function(
        "() => ['positive', 'negative', 'error'].includes(document.querySelector('#result').dataset.state)"
    )
    return page.text_content("#result"), page.get_attribute("#result", "data-state")


def test_page_looks_like_the_original(page, page_url):
    page.goto(page_url)
    assert page.title() == "Sentiment Analysis Web App"
    assert page.text_content("h1") == "Is your review positive, or negative?"
    assert page.is_visible("#review") and page.is_visible("#submit")


def test_positive_review(page, page_url):
    text, state = submit(page, page_url, POSITIVE)
    assert (text, state) == ("Your review was POSITIVE!", "positive")
    assert page.text_content("#score").startswith("score 0.")


def test_negative_review(page, page_url):
    text, state = submit(page, page_url, NEGATIVE)
    assert (text, state) == ("Your review was NEGATIVE!", "negative")


def test_markup_in_a_review_stays_text(page, page_url):
    review = '<script>window.__pwned = true</script><img src=x onerror="window.__pwned = true"> ' + POSITIVE
    text, state = submit(page, page_url, review)
    assert state in ("positive", "negative")
    assert page.evaluate("() => window.__pwned") is None
    assert page.evaluate("() => document.querySelector('#result').children.length") == 0
    assert page.input_value("#review") == review


def test_api_down_shows_an_error_not_a_verdict(page, page_url):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    text, state = submit(page, f"{page_url}?api={dead}", POSITIVE)
    assert state == "error"
    assert text.startswith("Error") and "POSITIVE" not in text and "NEGATIVE" not in text


def test_gateway_error_without_cors_headers_is_an_error(page, page_url, emulator):
    # An unknown stage answers 403 with no CORS headers, as on AWS: the browser sees a failed fetch.
    text, state = submit(page, f"{page_url}?api={emulator.url}/_aws/execute-api/nosuchapi/prod/", POSITIVE)
    assert state == "error" and text.startswith("Error")


def test_endpoint_failure_shows_the_status(page, page_url, emulator):
    """A second public API of its own whose endpoint does not exist: the Lambda answers 502 (with CORS
    headers) and the page shows it. The shared app is left as it was."""
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as target:
        broken = imdb_web_app.publish(target, "no-such-endpoint", {"wonderful": 0}, log=lambda *_: None)
        text, state = submit(page, f"{page_url}?api={broken.api_url}", POSITIVE)
    assert state == "error" and "502" in text
