"""The web UI as a user meets it, in a real headless Chromium: refused without a token,
signed in through the form, navigated by clicks, the lineage graph read back from the
Cytoscape instance in the page, a diff, a forged form refused. Screenshots of the main pages
go to docs/ui/ with UI_SCREENSHOTS=1 (conftest.py, `shots`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait
from tests.ui.conftest import EMAILS, Books

from featureledger.ui.graph import MAP_KINDS

pytestmark = [pytest.mark.server, pytest.mark.subprocess]


def wait(driver: Any, css: str, timeout: float = 30) -> Any:
    return WebDriverWait(driver, timeout).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def shot(driver: Any, folder: Path, name: str) -> Path:
    """A screenshot of the whole page, kept small: 1,000 px wide at most, 128 colours."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 600), 1800))
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)
    image = Image.open(path).convert("RGB")
    # a blank page would be one colour: the screenshot shows something
    assert len(image.getcolors(1 << 20) or [0] * 99) > 10
    image.thumbnail((1000, 1400))
    image.quantize(colors=128).save(path, optimize=True)
    return path


def sign_in(driver: Any, books: Books, token: str, path: str = "/") -> None:
    driver.delete_all_cookies()
    driver.get(books.url + path)
    form = wait(driver, "form#login")
    form.find_element(By.NAME, "token").send_keys(token)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, "header.top nav")
    driver.get_log("browser")  # drained: the 401 of the page before signing in is expected


def console_errors(driver: Any) -> list[str]:
    """Errors the page logged: script failures and CSP violations alike."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_every_page_is_refused_without_a_token(books: Books, browser: Any, shots: Path) -> None:
    pages = ["/", "/group/activity", "/lineage", "/models", "/audit", "/monitors", "/view/scoring"]
    with books.client() as anon:
        for page in pages:
            r = anon.get(page)
            assert r.status_code == 401, page
            assert "Sign in" in r.text
            assert "Daily spend" not in r.text and "identity-team" not in r.text  # no books
        # a wrong token is refused as well, and says so
        r = anon.get("/", headers={"Authorization": "Bearer fl_not-a-real-token"})
        assert r.status_code == 401 and "not known" in r.text
    browser.delete_all_cookies()
    browser.get(books.url + "/group/activity")
    wait(browser, "form#login")
    assert "Daily spend" not in browser.page_source  # nothing of the books leaks
    shot(browser, shots, "login")
    # a wrong token through the form: refused, still on the form
    browser.find_element(By.NAME, "token").send_keys("fl_wrong")
    browser.find_element(By.CSS_SELECTOR, "form#login button").click()
    assert "not known" in wait(browser, "#message").text
    assert browser.get_cookie("fl_ui_session") is None


def test_sign_in_and_navigate_by_clicks(books: Books, browser: Any, shots: Path) -> None:
    sign_in(browser, books, books.reader, "/group/activity")
    # back where the user wanted to go, with an HttpOnly, SameSite=Strict session cookie
    assert browser.current_url.endswith("/ui/group/activity")
    cookie = browser.get_cookie("fl_ui_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert books.reader not in browser.page_source  # the secret never comes back

    browser.find_element(By.LINK_TEXT, "Catalog").click()
    wait(browser, "section#feature_group")
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "section#feature_group td a")]
    assert names == ["activity", "profile"]
    labels = browser.find_element(By.CSS_SELECTOR, "section#feature_group").text
    assert "email: pii" in labels
    shot(browser, shots, "catalog")

    # search narrows the catalog
    box = browser.find_element(By.CSS_SELECTOR, "form.filter input[name=q]")
    box.clear()
    box.send_keys("pii")
    box.submit()
    wait(browser, "section#feature_group")
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "section#feature_group td a")]
    assert names == ["profile"]

    browser.get(books.url + "/")
    browser.find_element(By.LINK_TEXT, "activity").click()
    wait(browser, "table.timeline")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.timeline tbody tr")
    versions = books.store.versions("activity")
    assert [r.get_attribute("id") for r in rows] == [f"v{v.version}" for v in reversed(versions)]
    newest = rows[0].text
    assert str(versions[-1].content) in newest and "shifted upstream" in newest
    # the contract's verdict and the two held-back rows with their reasons
    assert browser.find_element(By.ID, "validation-status").text == "quarantined"
    held = browser.find_elements(By.CSS_SELECTOR, "table.quarantine tbody tr")
    assert len(held) == 2 and all("visits" in r.text for r in held)
    # a histogram per numeric column of the chosen version
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-column=spend] svg.hist rect")
    shot(browser, shots, "group")

    browser.find_element(By.LINK_TEXT, "Models").click()
    wait(browser, "main table")
    assert "auc >= 0.7" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, shots, "models")
    browser.find_element(By.LINK_TEXT, "Audit").click()
    status = wait(browser, "#chain-status")
    assert status.text.startswith("Chain verified")
    shot(browser, shots, "audit")
    assert console_errors(browser) == []


def test_lineage_graph_draws_the_books(books: Books, browser: Any, shots: Path) -> None:
    sign_in(browser, books, books.reader, "/lineage")
    wait(browser, "#graph[data-ready='1']")
    drawn = browser.execute_script("return window.flGraph.nodes().map(n => n.id())")
    graph = books.store.lineage_graph(include_runs=False)
    expected = {n for n in graph.nodes() if graph.node(n).kind in MAP_KINDS}
    assert set(drawn) == expected
    assert {"feature_view/scoring@v1", "model/fraud/1", "deployment/fraud_api"} <= expected
    edges = browser.execute_script(
        "return window.flGraph.edges().map(e => [e.source().id(), e.target().id()])"
    )
    assert {tuple(e) for e in edges} == {
        (e.source, e.target) for e in graph.edges() if e.source in expected and e.target in expected
    }
    assert console_errors(browser) == []  # Cytoscape runs under the CSP
    shot(browser, shots, "lineage")

    # a focus: what the training set was made from and what was made from it, 2 steps
    focus = "training_dataset/scoring@v1/1"
    browser.get(books.url + "/lineage?focus=" + quote(focus))
    wait(browser, "#graph[data-ready='1']")
    drawn = set(browser.execute_script("return window.flGraph.nodes().map(n => n.id())"))
    near = {focus, *graph.ancestors(focus, 2), *graph.descendants(focus, 2)}
    assert drawn == near
    assert "model/fraud/1" in drawn and "feature_group/activity@v1#3" in drawn

    # a real click on the model's node opens the model's page
    x, y = browser.execute_script(
        "const p = window.flGraph.$id('model/fraud/1').renderedPosition(); return [p.x, p.y];"
    )
    canvas = browser.find_element(By.ID, "graph")
    left, top = canvas.rect["width"] / 2, canvas.rect["height"] / 2
    ActionChains(browser).move_to_element_with_offset(canvas, x - left, y - top).click().perform()
    WebDriverWait(browser, 20).until(lambda d: "/ui/model/fraud" in d.current_url)
    wait(browser, "main h2")  # the model's page: its versions, newest first
    assert "model/fraud/1" in [h.text for h in browser.find_elements(By.CSS_SELECTOR, "main h2")]

    # the impact view: everything downstream of the shifted version, deployment included
    browser.get(books.url + "/impact?identity=" + quote("feature_group/activity@v1#3"))
    serving = wait(browser, "#serving").text
    assert "deployment/fraud_api" in serving
    shot(browser, shots, "impact")


def test_diff_between_two_versions(books: Books, browser: Any, shots: Path) -> None:
    sign_in(browser, books, books.reader, "/group/activity")
    form = wait(browser, "form#diff-form")
    Select(form.find_element(By.NAME, "old")).select_by_value("1")
    Select(form.find_element(By.NAME, "new")).select_by_value("3")
    form.find_element(By.CSS_SELECTOR, "button").click()
    summary = wait(browser, "#diff-summary")
    d = books.store.diff("activity", 1, 3)
    shown = {
        td.get_attribute("data-k"): td.text
        for td in summary.find_elements(By.CSS_SELECTOR, "td[data-k]")
    }
    assert shown == {
        "added": f"{d.added:,}",
        "removed": f"{d.removed:,}",
        "changed": f"{d.changed:,}",
        "unchanged": f"{d.unchanged:,}",
    }
    assert d.added == 798  # day three's rows, less the two quarantined ones
    shot(browser, shots, "diff")


def test_forged_form_is_refused_and_findings_stay_open(
    books: Books, browser: Any, shots: Path
) -> None:
    open_before = {f["monitor"] for f in books.store.open_findings()}
    assert open_before == {"spend_psi", "visits_psi"}
    sign_in(browser, books, books.writer, "/monitors")
    wait(browser, "table.findings")
    shot(browser, shots, "monitors")
    # a form whose CSRF token is not the session's (what another site would post)
    browser.execute_script(
        "document.querySelectorAll('form.resolve input[name=csrf]')"
        ".forEach(i => { i.value = 'forged'; });"
    )
    form = browser.find_elements(By.CSS_SELECTOR, "form.resolve")[0]
    form.find_element(By.NAME, "reason").send_keys("looks fine")
    form.find_element(By.CSS_SELECTOR, "button").click()
    assert "CSRF" in wait(browser, "#message").text
    browser.get_log("browser")  # drained: that 403 is the point
    assert {f["monitor"] for f in books.store.open_findings()} == open_before

    # the same form, untouched: resolved, and the audit log names the token
    browser.get(books.url + "/monitors")
    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "table.findings tbody tr")
        if r.text.startswith("visits_psi")
    )
    row.find_element(By.NAME, "reason").send_keys("expected: new loyalty programme")
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(browser, "table.findings")
    assert {f["monitor"] for f in books.store.open_findings()} == {"spend_psi"}
    entry = books.store.audit_log("monitor/visits_psi")[-1]
    assert "expected: new loyalty programme" in entry.details["reason"]

    # drift plots of the open finding, drawn as images under the CSP
    browser.get(books.url + "/monitors")
    browser.find_element(By.LINK_TEXT, "drift plots").click()
    image = wait(browser, "figure.plot img")
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0
    )
    shot(browser, shots, "drift")
    assert console_errors(browser) == []


def test_readers_cannot_write_and_bearer_calls_need_no_csrf(books: Books) -> None:
    with books.client(books.reader) as reader:
        r = reader.post("/monitors/spend_psi/resolve", data={"reason": "x"})
        assert r.status_code == 403 and "needs a writer" in r.text
    assert "spend_psi" in {f["monitor"] for f in books.store.open_findings()}


def test_private_values_need_a_purpose(books: Books) -> None:
    pages = ["/group/profile", "/training/scoring/1", "/group/profile/diff?old=0&new=1"]
    with books.client(books.reader) as reader, books.client(books.purposeful) as purposeful:
        for page in pages:
            hidden = reader.get(page)
            assert hidden.status_code == 200, page
            assert not any(e in hidden.text for e in EMAILS), page
            assert "•••• private" in hidden.text, page
        shown = purposeful.get("/group/profile").text
        assert any(e in shown for e in EMAILS)  # the minimum, or a frequent value


def test_security_headers_and_no_inline_script(books: Books) -> None:
    with books.client(books.reader) as c:
        for page in ["/", "/lineage", "/group/activity", "/audit", "/login"]:
            r = c.get(page)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "'unsafe-inline'" not in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["cache-control"] == "no-store"
            # every script is a file of the package or inert data
            html = r.text
            for chunk in html.split("<script")[1:]:
                tag = chunk.split(">", 1)[0]
                assert "src=" in tag or 'type="application/json"' in tag, tag
            assert books.reader not in html


def test_revoked_token_signs_the_session_out(books: Books) -> None:
    secret = books.store.create_token("reader", all_views=True)
    with books.client(follow_redirects=False) as c:
        page = c.get("/login")
        nonce = page.cookies["fl_ui_login"]
        r = c.post("/login", data={"token": secret, "csrf": nonce, "next": "/audit"})
        assert r.status_code == 303 and r.headers["location"].endswith("/ui/audit")
        assert c.get("/audit").status_code == 200
        books.store.revoke_token(books.store.tokens()[-1].id)  # oldest first: the new one
        assert c.get("/audit").status_code == 401


def test_training_set_shows_its_splits_and_deployments_their_traffic(books: Books) -> None:
    rec = books.store.training_datasets("scoring")[0]
    parts = rec.params["split"]["parts"]
    with books.client(books.reader) as c:
        page = c.get("/training/scoring/1").text
        for name, part in parts.items():  # each part: its identity, rows and hash
            assert f"{rec.identity}:{name}" in page and part["content"] in page
        assert parts["train"]["rows"] + parts["test"]["rows"] == rec.rows
        status = books.store.deployment_status("fraud_api")
        traffic = c.get("/deployments").text.split("<h3>Moves</h3>")[0]
    assert status["canary"] == "model/fraud/2" and status["shadow"] == "model/fraud_simple/1"
    assert "80 %" in traffic and "20 %" in traffic  # primary and the canary's weight
    assert "model/fraud/2" in traffic and "model/fraud_simple/1" in traffic
    assert "logged, never returned" in traffic
