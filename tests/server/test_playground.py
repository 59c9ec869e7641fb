"""The playground: GET / and its static files, training curves by task name, and the page itself driven in
headless Chromium (Debian's chromium + chromium-driver, through selenium) against a real gunicorn."""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate

from service import create_app
from tests.support.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STATIC = ROOT / "service" / "server" / "static"
WAIT = 20  # seconds for any one thing to appear in the page
KEY = "s3cret-playground-key"


# ---- the routes (Flask test client on the real app) ----------------------------------------------


def test_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        if ref.startswith("static/"):
            asset = client.get("/" + ref)
            assert asset.status_code == 200, ref
            assert asset.data == (STATIC / ref.removeprefix("static/")).read_bytes()


def test_page_needs_nothing_but_the_service():
    """No CDN, no absolute URL: every reference is relative to the service (the SVG namespace is a name)."""
    for path in STATIC.iterdir():
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{path.name} refers outside the service: {urls}"


def test_training_curves_are_served_by_task_name(client, tasks, models_copy):
    for task in tasks:
        curve = models_copy / task / "training.png"
        r = client.get(f"/tasks/{task}/training.png")
        if not curve.exists():
            assert r.status_code == 404
            continue
        assert r.status_code == 200 and r.mimetype == "image/png" and r.data == curve.read_bytes()
        again = client.get(f"/tasks/{task}/training.png", headers={"If-None-Match": r.headers["ETag"]})
        assert again.status_code == 304 and again.data == b""


@pytest.mark.parametrize("name", ["nope", "..", "...", "%2e%2e", "..%2f..%2fpyproject.toml", "models"])
def test_unknown_names_never_become_paths(client, tasks, name):
    r = client.get(f"/tasks/{name}/training.png")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert not r.data.startswith(b"\x89PNG")


def test_unknown_task_answer_names_the_known_ones(client, tasks):
    problem = client.get("/tasks/nope/training.png").get_json()
    assert problem["detail"] == f"unknown task 'nope'; known tasks: {', '.join(sorted(tasks))}"


def test_a_task_without_a_curve_answers_404(tmp_path, tasks, models_copy):
    models = tmp_path / "models"
    shutil.copytree(models_copy / tasks[0], models / tasks[0])
    (models / tasks[0] / "training.png").unlink(missing_ok=True)
    r = create_app({"models_dir": str(models)}).test_client().get(f"/tasks/{tasks[0]}/training.png")
    assert r.status_code == 404 and r.get_json()["detail"] == f"task {tasks[0]} has no training curve"


def test_openapi_documents_the_playground_routes(client):
    doc = client.get("/openapi.json").get_json()
    validate(doc)
    assert "image/png" in doc["paths"]["/tasks/{name}/training.png"]["get"]["responses"]["200"]["content"]
    assert "text/html" in doc["paths"]["/"]["get"]["responses"]["200"]["content"]


# ---- the page in a real browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the test extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # Without the background-networking flags chromium's own connections are refused on a sealed machine.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1400",
    ):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(dir=tmp_path_factory.mktemp("chromium"))
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


class Page:
    """The playground as a user sees it: ids from playground.html, waits bounded by WAIT."""

    def __init__(self, driver, base_url: str):
        self.driver, self.base_url = driver, base_url

    def open(self) -> Page:
        self.driver.get(self.base_url + "/")
        self.wait(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
        return self

    def wait(self, condition):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT).until(condition)

    def find(self, css: str):
        return self.driver.find_element("css selector", css)

    def find_all(self, css: str):
        return self.driver.find_elements("css selector", css)

    def choose(self, task: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find("#task")).select_by_value(task)
        self.wait(lambda d: self.find("#sequence").get_attribute("data-task") == task)

    def type_sequence(self, text: str) -> None:
        field = self.find("#sequence")
        field.clear()
        field.send_keys(text)

    def press(self, button: str):
        """Click a button and wait for the answer or the problem that replaces the previous result."""
        self.driver.execute_script("document.getElementById('result').replaceChildren()")
        self.find(button).click()
        return self.wait(
            lambda d: (
                d.find_elements("css selector", "#answer-value")
                or d.find_elements("css selector", "#result .problem")
                or [None]
            )[0]
        )

    def problem(self) -> dict:
        box = self.find("#result .problem")
        return {
            "title": box.find_element("css selector", ".problem-title").text,
            "detail": box.find_element("css selector", ".problem-detail").text,
            "errors": [
                (li.find_element("css selector", ".pointer").text, li.find_element("css selector", ".message").text)
                for li in box.find_elements("css selector", ".problem-errors li")
            ],
        }


def pick(listing: list[dict], wanted, preferred: tuple[str, ...]) -> dict | None:
    """A task that has what the test needs, preferring the most telling ones."""
    fit = [t for t in listing if t["available"] and wanted(t)]
    fit.sort(key=lambda t: preferred.index(t["name"]) if t["name"] in preferred else len(preferred))
    return fit[0] if fit else None


def api_predict(base_url: str, task: str, body: dict, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{base_url}/tasks/{task}/predict", json=body, headers=headers, timeout=10)


def example(base_url: str, task: str) -> list:
    return requests.get(f"{base_url}/tasks/{task}", timeout=10).json()["example"]["request"]["body"]["inputs"][0]


def numbers(text: str) -> list[float]:
    """The numbers the page shows, e.g. "[3, 1.5, 4]" (JavaScript writes 1.0 as 1, Python as 1.0)."""
    return [float(t) for t in re.split(r"[\s,\[\]]+", text) if t]


def screenshot(driver, path: Path) -> None:
    """The whole page, beyond the window (Chromium's DevTools capture), as a PNG."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


@pytest.mark.slow
def test_playground_in_a_browser(browser, gunicorn_server, tasks, tmp_path):
    server = gunicorn_server()
    listing = requests.get(server.base_url + "/tasks", timeout=10).json()["tasks"]
    page = Page(browser, server.base_url).open()

    # The catalogue: every task, its contract, its gates, its training curve actually decoded by the browser.
    for task in listing:
        card = page.find(f"#card-{task['name']}")
        assert task["description"] in card.text
        contract = card.find_element("css selector", ".input-contract").text
        assert f"{_js_number(task['input']['low'])}..{_js_number(task['input']['high'])}" in contract
        rows = card.find_elements("css selector", ".gates tbody tr")
        assert [r.find_element("css selector", "th").text for r in rows] == [g["category"] for g in task["evaluation"]]
        # Figures as a person reads them (at most 4 significant digits), and the card never scrolls sideways.
        got = [r.find_elements("css selector", "td")[2].text for r in rows]
        assert all(len(text.replace("-", "").replace(".", "").split("e")[0].lstrip("0")) <= 4 for text in got), got
        assert page.driver.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", card)
        image = card.find_element("css selector", ".curve img")
        page.driver.execute_script(
            "arguments[0].scrollIntoView()", image
        )  # the curve loads lazily, as a reader scrolls
        page.wait(
            lambda d, image=image: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
        )

    # A prediction: the page shows exactly what the API answers for the same input.
    chosen = pick(listing, lambda t: True, ("arith-next", "echo-lag", "second-element"))
    page.choose(chosen["name"])
    inputs = example(server.base_url, chosen["name"])
    assert numbers(page.find("#sequence").get_attribute("value")) == inputs
    shown = page.press("#predict")
    body = {"inputs": [inputs]}
    if chosen["top_k"]:
        body["top_k"] = min(5, chosen["max_top_k"])
    expected = api_predict(server.base_url, chosen["name"], body).json()
    assert shown.get_attribute("data-json") is not None
    assert json.loads(shown.get_attribute("data-json")) == expected["outputs"][0]
    assert numbers(page.find("#answer-input").text) == inputs

    # A rollout: drawn as the input's line continued by the rolled-out values.
    rolling = pick(listing, lambda t: t["rollout"], ("arith-next", "ramp", "alternating"))
    if rolling is None:
        pytest.fail("no committed task supports rollout; alternating is committed, so this is a regression")
    page.choose(rolling["name"])
    steps = 12
    page.find("#steps").clear()
    page.find("#steps").send_keys(str(steps))
    shown = page.press("#rollout")
    inputs = example(server.base_url, rolling["name"])
    expected = api_predict(server.base_url, rolling["name"], {"inputs": [inputs], "steps": steps}).json()
    assert json.loads(shown.get_attribute("data-json")) == expected["outputs"][0]
    chart = page.find("#result svg.chart")
    input_points = chart.find_element("css selector", ".series-input").get_attribute("points").split()
    rollout_points = chart.find_element("css selector", ".series-rollout").get_attribute("points").split()
    assert len(input_points) == len(inputs) and len(rollout_points) == steps + 1
    assert rollout_points[0] == input_points[-1]  # the rollout continues the input's line
    assert len(chart.find_elements("css selector", "circle")) == len(inputs) + steps
    assert str(len(inputs)) in chart.get_attribute("aria-label")
    rollout_screenshot = tmp_path / "playground-rollout.png"
    screenshot(browser, rollout_screenshot)

    # A validation error, worded by the API: an out-of-range value at its pointer.
    bad_value = int(rolling["input"]["high"]) * 10 + 7
    bad = [*inputs[:-1], bad_value]
    page.type_sequence(", ".join(map(str, bad)))
    page.press("#predict")
    api = api_predict(server.base_url, rolling["name"], {"inputs": [bad]})
    assert api.status_code == 422
    problem = api.json()
    shown_problem = page.problem()
    assert shown_problem["title"] == f"422 {problem['title']}"
    assert shown_problem["detail"] == problem["detail"]
    assert shown_problem["errors"] == [(e["pointer"], e["message"]) for e in problem["errors"]]
    assert "outside" in problem["errors"][0]["message"]  # really the range check, not some other problem
    screenshot(browser, tmp_path / "playground-error.png")

    # Top-k bars for a class task with one output value.
    classy = pick(listing, lambda t: t["top_k"], ("second-element", "copy-first", "last-value", "alternating"))
    if classy is not None:
        page.choose(classy["name"])
        page.press("#predict")
        k = min(5, classy["max_top_k"])
        expected = api_predict(
            server.base_url, classy["name"], {"inputs": [example(server.base_url, classy["name"])], "top_k": k}
        ).json()
        bars = page.find_all("#result .topk li")
        assert [(int(b.get_attribute("data-value")), float(b.get_attribute("data-p"))) for b in bars] == [
            (c["value"], c["p"]) for c in expected["top_k"][0]
        ]
        widths = [b.find_element("css selector", ".bar").size["width"] for b in bars]
        assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1] >= 0

    final = tmp_path / "playground.png"
    screenshot(browser, final)
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "/predict" not in e["message"]]
    assert not logs, logs  # no script errors (a 4xx from predict is logged by Chromium and expected)
    assert "Traceback" not in server.log()


@pytest.mark.slow
def test_api_key_flow_in_a_browser(browser, gunicorn_server, tasks, tmp_path):
    server = gunicorn_server({"TOYSEQ_API_KEY": KEY})
    page = Page(browser, server.base_url).open()
    browser.execute_script("sessionStorage.clear()")
    page.find("#api-key").clear()
    task = page.find("#task").get_attribute("value")

    page.press("#predict")
    api = api_predict(server.base_url, task, {"inputs": [example(server.base_url, task)]})
    assert api.status_code == 401
    assert page.problem()["title"] == "401 Unauthorized"
    assert page.problem()["detail"] == api.json()["detail"]

    page.find("#api-key").send_keys("wrong")
    page.press("#predict")
    assert page.problem()["title"] == "401 Unauthorized"

    page.find("#api-key").clear()
    page.find("#api-key").send_keys(KEY)
    shown = page.press("#predict")
    expected = api_predict(server.base_url, task, {"inputs": [example(server.base_url, task)]}, key=KEY).json()
    assert json.loads(shown.get_attribute("data-json")) == expected["outputs"][0]

    # Kept for this tab only: sessionStorage, never localStorage or a cookie; a reload keeps it.
    assert browser.execute_script("return sessionStorage.getItem('toyseq.apiKey')") == KEY
    assert browser.execute_script("return localStorage.length") == 0
    assert browser.get_cookies() == []
    page.open()
    assert page.find("#api-key").get_attribute("value") == KEY
    browser.execute_script("sessionStorage.clear()")


def _js_number(value) -> str:
    """How JavaScript prints a JSON number: -1000000.0 arrives as -1000000."""
    return str(int(value)) if float(value).is_integer() else repr(value)
