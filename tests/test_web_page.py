"""The operator's web page in a real browser: Debian's Chromium, headless, driven through
chromedriver (selenium), against a real `receiver serve`. It lists a remediation that awaits
approval; its page offers Approve once a token is entered; approving runs the remediation;
whatever a webhook carries is shown as text, never as markup."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests import processes
from tests.conftest import AUTH, TOKEN, payload

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
MANUAL = (
    "remediations:\n- {name: response_time_p90, approval: manual,"
    " actions: [{action: scaling, value: 1}]}\n"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium is not installed: run scripts/test, which installs it")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def post(port: int, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/alertmanager",
        data=json.dumps(body).encode(),
        headers=AUTH | {"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer: dict[str, Any] = json.load(response)
    return answer


def state(port: int, rid: int) -> str:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/api/v1/remediations/{rid}", timeout=10
    ) as response:
        document: dict[str, Any] = json.load(response)
    return str(document["state"])


def test_a_person_approves_a_waiting_remediation_from_the_page(
    browser: webdriver.Chrome, config_dir: Path, tmp_path: Path
) -> None:
    (config_dir / "sockshop" / "production" / "carts" / "remediation.yaml").write_text(MANUAL)
    port = processes.free_port()
    env = {
        "RECEIVER_STORE": str(tmp_path / "journal.db"),
        "RECEIVER_AUTH_TOKEN": TOKEN,
        "RECEIVER_REMEDIATION_COOLDOWN": "0s",
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
    }
    with processes.receiver(config_dir, port=port, log=tmp_path / "receiver.log", **env):
        body = payload("alertmanager-firing.json")
        body["alerts"][0]["labels"]["pod_name"] = "<img src=x onerror=alert(1)>"
        rid = post(port, body)["recorded"][0]["remediation_id"]
        deadline = time.monotonic() + 10
        while state(port, rid) != "awaiting_approval":
            assert time.monotonic() < deadline
            time.sleep(0.05)

        browser.get(f"http://127.0.0.1:{port}/")
        row = browser.find_element(By.CSS_SELECTOR, "#remediations tbody tr")
        assert "awaiting approval" in row.text
        assert "1 awaiting approval" in browser.find_element(By.CLASS_NAME, "summary").text
        row.find_element(By.LINK_TEXT, str(rid)).click()

        WebDriverWait(browser, 10).until(lambda d: f"Remediation {rid}" in d.title)
        approve = browser.find_element(By.CSS_SELECTOR, "button[data-action=approve]")
        assert not approve.is_enabled()  # nobody has said who they are yet
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#signin button").click()
        WebDriverWait(browser, 5).until(lambda d: approve.is_enabled())
        approve.click()
        WebDriverWait(browser, 10).until(
            lambda d: "approve: done" in d.find_element(By.ID, "message").text
        )
        deadline = time.monotonic() + 10
        while state(port, rid) == "awaiting_approval":
            assert time.monotonic() < deadline, "the approval never reached the engine"
            time.sleep(0.05)
        # The page follows by itself (it refreshes every 5 s): the approval shows, its
        # buttons are gone, and the action that ran (and failed: no cluster here) is listed.
        WebDriverWait(browser, 20).until(
            lambda d: (
                "approved" in d.find_element(By.ID, "live").text
                and not d.find_elements(By.CSS_SELECTOR, "button[data-action=approve]")
                and "scaling"
                in " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, "ol.steps"))
            )
        )
        source = browser.page_source
        assert "<img src=x" not in source  # no markup from a webhook
        errors = browser.get_log("browser")  # type: ignore[no-untyped-call]  # selenium: untyped
        assert errors == []  # no script error, no CSP violation
