"""The playground: GET / and its static files, training curves by task name, and the page itself driven in
headless Chromium (Debian's chromium + chromium-driver, through selenium) against a real gunicorn."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate

from benchmarks.harness.paths import ROOT
from service import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STATIC = ROOT / "service" / "server" / "http" / "static"
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
# Every browser test runs at a desktop width and a phone width, against a service without a key and one
# with TOYSEQ_API_KEY (the key typed into the page's field, as a person would).

WIDTHS = {"desktop": 1280, "phone": 390}
DOCS = ROOT / "docs"
SEED = [0, 101, 202, 303, 404, 1515, 606]  # arith-next: the 1515 is the wrong value
PREDICTS = "return performance.getEntriesByType('resource').filter(e => e.name.endsWith('/predict')).length"


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


@pytest.fixture(scope="module")
def services(tmp_path_factory, models_copy, tasks):
    """{"open": (server, None), "key": (server, KEY)}: real gunicorn, started once for the module."""
    from benchmarks.harness.server import Server

    logs = tmp_path_factory.mktemp("playground-servers")
    started = {
        "open": (Server(logs / "open.log", None, models_copy), None),
        "key": (Server(logs / "key.log", {"TOYSEQ_API_KEY": KEY}, models_copy), KEY),
    }
    yield started
    for server, _ in started.values():
        server.stop()


@pytest.fixture(params=list(WIDTHS))
def width(request) -> str:
    return request.param


@pytest.fixture(params=["open", "key"])
def page(request, browser, services, width):
    server, key = services[request.param]
    page = Page(browser, server.base_url, width, key).open()
    yield page
    assert "Traceback" not in server.log()


class Page:
    """The playground as a user sees it at one width: ids from playground.html, waits bounded by WAIT."""

    def __init__(self, driver, base_url: str, width: str = "desktop", key: str | None = None):
        self.driver, self.base_url, self.width, self.key = driver, base_url, width, key

    def open(self) -> Page:
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTHS[self.width], "height": 900, "deviceScaleFactor": 1, "mobile": self.width == "phone"},
        )
        self.driver.get(self.base_url + "/")
        self.driver.execute_script("sessionStorage.clear(); performance.setResourceTimingBufferSize(10000)")
        self.driver.get(self.base_url + "/")
        self.wait(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
        if self.key:
            self.find("#api-key").send_keys(self.key)
        return self

    def wait(self, condition):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT).until(condition)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def find(self, css: str):
        return self.driver.find_element("css selector", css)

    def find_all(self, css: str):
        return self.driver.find_elements("css selector", css)

    def choose(self, task: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find("#task")).select_by_value(task)
        self.wait(lambda d: self.find("#sequence").get_attribute("data-task") == task)

    def type_into(self, css: str, text: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(text)

    def predicts(self) -> int:
        """How many predict requests the browser has sent (its own resource timing record)."""
        return self.js(PREDICTS)

    def act(self, action) -> None:
        """Do something that asks for an answer (a click, an Enter) and wait until the page has settled on
        an answer or a problem, whichever replaces what was shown before."""
        self.js(
            "document.getElementById('result').replaceChildren();"
            "for (const id of ['sequence-problem', 'steps-problem', 'key-problem'])"
            "  document.getElementById(id).replaceChildren();"
        )
        action()
        self.wait(
            lambda d: d.execute_script(
                "return document.getElementById('busy').hidden && !!document.querySelector('#answer-value, .problem')"
            )
        )
        # Whatever was shown fits the width: the page never scrolls sideways, on a phone either.
        assert self.js("return document.documentElement.scrollWidth <= innerWidth"), self.width

    def press(self, button: str) -> None:
        self.act(lambda: self.find(button).click())

    def enter(self, css: str) -> None:
        from selenium.webdriver.common.keys import Keys

        self.act(lambda: self.find(css).send_keys(Keys.ENTER))

    def answer(self):
        return json.loads(self.find("#answer-value").get_attribute("data-json"))

    def problems(self, holder: str) -> list[str]:
        return [li.text for li in self.find_all(f"#{holder} .problem-errors li")]

    def visible_text(self) -> str:
        return self.find("body").text

    def shot(self, css: str, name: str) -> None:
        """A screenshot of one part of the page into docs/, for docs/api.md."""
        rect = self.js(
            "const r = arguments[0].getBoundingClientRect();"
            "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}",
            self.find(css),
        )
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": {**rect, "scale": 1}},
        )
        path = DOCS / name
        path.write_bytes(base64.b64decode(shot["data"]))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def listing(page: Page) -> list[dict]:
    return requests.get(page.base_url + "/tasks", timeout=10).json()["tasks"]


def api_predict(page: Page, task: str, body: dict) -> requests.Response:
    headers = {"Authorization": f"Bearer {page.key}"} if page.key else {}
    return requests.post(f"{page.base_url}/tasks/{task}/predict", json=body, headers=headers, timeout=10)


def example(page: Page, task: str) -> list:
    return requests.get(f"{page.base_url}/tasks/{task}", timeout=10).json()["example"]["request"]["body"]["inputs"][0]


def numbers(text: str) -> list[float]:
    """The numbers the page shows as a list of values (chips, one per line of text)."""
    return [float(t) for t in re.split(r"[\s,\[\]]+", text) if t]


LINES = """
// The lines an element's text is rendered on, as the browser broke them.
const lines = [];
let top = null;
const walker = document.createTreeWalker(arguments[0], NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  for (let i = 0; i < node.data.length; i++) {
    const range = document.createRange();
    range.setStart(node, i); range.setEnd(node, i + 1);
    const rect = range.getClientRects()[0];
    if (!rect) continue;
    if (top === null || rect.top > top + 2) { lines.push(""); top = rect.top; }
    lines[lines.length - 1] += node.data[i];
  }
}
return lines;
"""


@pytest.mark.slow
def test_every_task_predicts_what_the_api_answers(page):
    for task in listing(page):
        if not task["available"]:
            continue
        page.choose(task["name"])
        inputs = example(page, task["name"])
        page.press("#predict")
        body = {"inputs": [inputs]}
        if task["top_k"]:
            body["top_k"] = min(5, task["max_top_k"])
        expected = api_predict(page, task["name"], body).json()
        assert page.answer() == expected["outputs"][0], task["name"]
        assert numbers(page.find("#answer-input").text) == inputs
        if task["top_k"] and not isinstance(expected["outputs"][0], list):
            bars = page.find_all("#result .topk li")
            assert [(int(b.get_attribute("data-value")), float(b.get_attribute("data-p"))) for b in bars] == [
                (c["value"], c["p"]) for c in expected["top_k"][0]
            ]
            widths = [b.find_element("css selector", ".bar").size["width"] for b in bars]
            assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1] >= 0
    logs = [e for e in page.driver.get_log("browser") if e["level"] == "SEVERE" and "/predict" not in e["message"]]
    assert not logs, logs  # no script errors (a 4xx from predict is logged by Chromium and expected)


BAD_STEPS = ["-3", "0", "2.5", "1001", "", "abc"]


@pytest.mark.slow
def test_a_bad_steps_value_never_blocks_predict(page):
    predicted = api_predict(page, "alternating", {"inputs": [example(page, "alternating")]}).json()["outputs"][0]
    for steps in BAD_STEPS:
        page.choose("alternating")
        page.type_into("#steps", steps)
        page.press("#predict")  # Predict does not use Steps
        assert page.answer() == predicted, steps
        # Steps hidden on a task without rollout, still holding the bad value: Predict and Enter both answer.
        page.choose("sum-first-two")
        assert not page.find("#steps").is_displayed()
        page.press("#predict")
        assert page.answer() == 42, steps
        page.enter("#sequence")
        assert page.answer() == 42, steps
        # Roll out with that value: refused in words at the Steps field, and nothing sent.
        page.choose("alternating")
        sent = page.predicts()
        page.press("#rollout")
        assert page.problems("steps-problem") and "whole number from 1 to 1000" in page.problems("steps-problem")[0]
        assert page.find("#steps").get_attribute("aria-invalid") == "true"
        assert page.predicts() == sent
        assert not page.find_all("#result .problem")  # shown once, at the field


@pytest.mark.slow
def test_enter_runs_the_action_of_its_field(page):
    page.choose("arith-next")
    page.type_into("#steps", "4")
    page.enter("#steps")
    rolled = api_predict(page, "arith-next", {"inputs": [example(page, "arith-next")], "steps": 4}).json()
    assert page.answer() == rolled["outputs"][0] and len(page.answer()) == 4
    assert page.find_all("#result svg.chart")
    page.enter("#sequence")
    assert (
        page.answer() == api_predict(page, "arith-next", {"inputs": [example(page, "arith-next")]}).json()["outputs"][0]
    )
    assert not page.find_all("#result svg.chart")


@pytest.mark.slow
def test_the_wrong_value_is_marked_and_named(page):
    page.choose("arith-next")
    page.type_into("#sequence", ", ".join(map(str, SEED)))
    page.press("#predict")
    api = api_predict(page, "arith-next", {"inputs": [SEED]}).json()
    assert api["wrong_position"] == [5]  # the model's own judgement, which the page must show
    assert page.answer() == api["outputs"][0]
    marked = page.find_all("#answer-input li.marked")
    assert [m.text for m in marked] == ["1515"]
    items = page.find_all("#answer-input li")
    assert items.index(marked[0]) == 5
    assert "value 6 (1515) wrong" in page.find("#wrong-value").text
    # The rollout chart rings the same value.
    page.type_into("#steps", "6")
    page.press("#rollout")
    dot = page.find("#result svg.chart circle.dot-wrong")
    assert dot.find_element("css selector", "title").get_attribute("textContent").startswith("position 6: 1515")
    if page.key is None:
        page.shot("#try", f"playground-{page.width}.png")


@pytest.mark.slow
def test_numbers_at_the_precision_the_evaluation_supports(page):
    ramp = next(t for t in listing(page) if t["name"] == "ramp")
    inputs = example(page, "ramp")
    for steps in (1, 12):
        page.choose("ramp")
        page.type_into("#steps", str(steps))
        page.press("#rollout")
        full = api_predict(page, "ramp", {"inputs": [inputs], "steps": steps}).json()["outputs"][0]
        assert page.answer() == full
        # The gate that covers this many steps bounds the error in steps of the window; with the window's
        # step that is the last decimal worth showing (0.30000000000000004 is float noise, shown as 0.3).
        gate = min(
            (g for g in ramp["evaluation"] if g["metric"] == "max_step_error" and (g["steps"] or 1) >= steps),
            key=lambda g: g["steps"] or 1,
        )
        largest_step = max(abs(b - a) for a, b in zip(inputs, inputs[1:]))
        decimals = math.ceil(-math.log10(gate["threshold"] * largest_step))
        chips = page.find_all("#answer-value li")
        for chip, value in zip(chips, full, strict=True):
            text = chip.text
            assert float(text) == round(value, decimals), (text, value)
            assert chip.get_attribute("title").endswith(f": {_js_number(value)}")  # the full value on hover
            assert page.js("return arguments[0].getClientRects().length", chip) == 1  # never wraps inside a value
        assert f"Shown to {decimals} decimals" in page.find("#result").text
    assert any(len(repr(v)) > 10 for v in full), "the example no longer produces float noise to hide"


@pytest.mark.slow
def test_evaluation_tables_are_readable_without_scrolling(page):
    for task in listing(page):
        if not task["available"]:
            continue
        card = page.find(f"#card-{task['name']}")
        wrap = card.find_element("css selector", ".gates-wrap")
        assert page.js("return arguments[0].scrollWidth <= arguments[0].clientWidth", wrap), task["name"]
        assert page.js("return arguments[0].scrollWidth <= arguments[0].clientWidth", card), task["name"]
        rows = card.find_elements("css selector", ".gates tbody tr")
        assert [r.find_element("css selector", "th").text for r in rows] == [g["category"] for g in task["evaluation"]]
        counts = [r.find_element("css selector", "td.n").get_attribute("textContent") for r in rows]
        assert counts == [f"{g['n']:,}" for g in task["evaluation"]]
        # Figures as a person reads them (at most 4 significant digits), the full value on hover.
        got = [r.find_element("css selector", 'td[data-label="got"]') for r in rows]
        for cell, gate in zip(got, task["evaluation"], strict=True):
            text = cell.get_attribute("textContent")
            assert len(text.replace("-", "").replace(".", "").replace("%", "").split("e")[0].lstrip("0")) <= 4, text
            if gate["metric"] in ("exact", "exact_worst_position"):  # a share of answers, said as one
                assert text == f"{gate['value'] * 100:g}%", text
                needs = cell.find_element("xpath", "preceding-sibling::td[1]").get_attribute("textContent")
                assert needs.endswith(f"{gate['threshold'] * 100:g}%"), needs
            assert float(cell.get_attribute("title")) == gate["value"]
        # Words break only where a name may break: after an underscore or at a space.
        for row in rows:
            for cell in row.find_elements("css selector", "th, td"):
                lines = page.js(LINES, cell)
                assert all(line.endswith(("_", " ", ",")) for line in lines[:-1]), (task["name"], lines)
        stacked = page.js("return getComputedStyle(arguments[0]).display", rows[0]) == "block"
        assert stacked == (page.width == "phone")
        head = card.find_element("css selector", ".gates thead")
        assert head.is_displayed() == (page.width == "desktop")
        if stacked:  # each value labelled by its column
            cell = rows[0].find_element("css selector", "td")
            assert page.js("return getComputedStyle(arguments[0], '::before').content", cell) == '"metric"'
    # No scroller among the tables: nothing to tab into that has no label.
    assert page.js("return [...document.querySelectorAll('.gates-wrap')].every(w => w.scrollWidth <= w.clientWidth)")
    echo_lag = page.find("#card-echo-lag .output-kind").text
    assert "from position 2 on" in echo_lag and "n - 1" in echo_lag
    if page.key is None:
        page.shot("#card-arith-next", f"playground-tasks-{page.width}.png")


@pytest.mark.slow
def test_errors_are_worded_at_the_value_they_concern(page):
    page.choose("echo-lag")
    bad = [5, 7, 140, 9]
    page.type_into("#sequence", ", ".join(map(str, bad)))
    page.press("#predict")
    api = api_predict(page, "echo-lag", {"inputs": [bad]})
    assert api.status_code == 422 and api.json()["errors"][0]["pointer"] == "/inputs/0/2"
    message = api.json()["errors"][0]["message"]
    assert page.problems("sequence-problem") == [f"Value 3: {message}"]  # counted from 1
    assert [m.text for m in page.find_all("#sequence-problem li.marked")] == ["140"]
    assert page.find("#sequence").get_attribute("aria-invalid") == "true"
    text = page.visible_text()
    assert text.count(message) == 1 and "/inputs" not in text  # once, and no JSON pointer
    if page.key is None:
        page.shot("#try", f"playground-error-{page.width}.png")
    # A fixed length is named as the one required (the API's own wording).
    page.choose("sum-first-two")
    page.type_into("#sequence", "1, 2")
    page.press("#predict")
    assert page.problems("sequence-problem") == [
        "The sequence: length 2, but task sum-first-two takes exactly 3 values"
    ]
    # The next good answer clears the mark.
    page.type_into("#sequence", "1, 2, 3")
    page.press("#predict")
    assert page.answer() == 3 and page.find("#sequence").get_attribute("aria-invalid") is None


AMBIGUOUS = [
    ("0,5 1,0 1,5 2,0", "decimal comma"),
    ("0,5, 1,0, 1,5", "decimal comma"),  # was read as six values 0 5 1 0 1 5
    ("1,5, 2, 3", "decimal comma"),
    ("1, 2, 3,, 4", "empty item between value 3 and the next"),
    ("1, 2, 3,", "empty item after the last value"),
    ("1, x, 3", "Value 2, “x”, is not a number."),
    ("", "The sequence is empty"),
]


@pytest.mark.slow
def test_ambiguous_input_is_refused_not_guessed(page):
    page.choose("ramp")
    for typed, words in AMBIGUOUS:
        sent = page.predicts()
        page.type_into("#sequence", typed)
        page.press("#predict")
        assert any(words in p for p in page.problems("sequence-problem")), (typed, page.problems("sequence-problem"))
        assert page.find("#sequence").get_attribute("aria-invalid") == "true"
        assert page.predicts() == sent and not page.find_all("#answer-value")


@pytest.mark.slow
def test_switching_task_keeps_what_you_typed(page):
    page.choose("echo")
    page.type_into("#sequence", "3 1 4 1 5")
    page.choose("sum-first-two")
    assert numbers(page.find("#sequence").get_attribute("value")) == example(page, "sum-first-two")
    page.choose("echo")
    assert page.find("#sequence").get_attribute("value") == "3 1 4 1 5"


@pytest.mark.slow
def test_busy_while_waiting_and_no_duplicate_requests(page):
    page.choose("arith-next")
    page.driver.execute_cdp_cmd("Network.enable", {})
    slow = {"offline": False, "latency": 3000, "downloadThroughput": -1, "uploadThroughput": -1}
    page.driver.execute_cdp_cmd("Network.emulateNetworkConditions", slow)
    try:
        sent = page.predicts()
        from selenium.webdriver.common.keys import Keys

        def hammer():
            for _ in range(3):
                page.find("#predict").click()
            page.find("#sequence").send_keys(Keys.ENTER)
            page.find("#rollout").click()
            assert page.find("#busy").is_displayed()
            assert page.find("#predict").get_attribute("aria-disabled") == "true"

        page.act(hammer)
    finally:
        page.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {**slow, "latency": 0})
        page.driver.execute_cdp_cmd("Network.disable", {})
    assert page.predicts() == sent + 1
    assert not page.find("#busy").is_displayed() and page.find("#predict").get_attribute("aria-disabled") is None
    assert not page.find_all("#result svg.chart")  # the first action won: Predict, not the later Roll out


@pytest.mark.slow
def test_chart_is_legible_with_positions_and_honest_labels(page):
    page.choose("arith-next")
    page.type_into("#sequence", ", ".join(map(str, SEED)))
    page.type_into("#steps", "3")
    page.press("#rollout")
    values = SEED + page.answer()
    chart = page.find("#result svg.chart")
    y_labels = [t.text for t in chart.find_elements("css selector", ".y-tick")]
    assert y_labels[0] == str(max(values)) and y_labels[-1] == str(min(values))  # 1515 reads 1515, not 1520
    x_labels = [int(t.text) for t in chart.find_elements("css selector", ".x-tick")]
    assert x_labels[0] == 1 and x_labels[-1] == len(values) and x_labels == sorted(x_labels)
    for tick in chart.find_elements("css selector", ".tick"):  # text as tall on a phone as on a desktop
        assert page.js("return arguments[0].getBoundingClientRect().height", tick) >= 11
    assert page.js("return arguments[0].getBoundingClientRect().right <= innerWidth", chart)


@pytest.mark.slow
def test_the_service_being_down_is_said_in_words(browser, gunicorn_server, width):
    server = gunicorn_server()
    page = Page(browser, server.base_url, width).open()
    server.stop()
    page.press("#predict")
    title = page.find("#result .problem-title").text
    assert title.startswith("The service did not answer") and "Failed to fetch" not in page.visible_text()


@pytest.mark.slow
def test_api_key_is_explained_and_enter_in_its_field_works(browser, services, width):
    server, key = services["key"]
    page = Page(browser, server.base_url, width).open()  # no key typed
    assert "needs an API key" in page.find("#key-note").text
    task = page.find("#task").get_attribute("value")
    body = {"inputs": [example(page, task)]}
    api = requests.post(f"{page.base_url}/tasks/{task}/predict", json=body, timeout=10)
    assert api.status_code == 401
    page.press("#predict")
    assert page.problems("key-problem") == [
        "No API key was given, and this service needs one: type it here, then press Enter."
    ]
    assert page.find("#api-key").get_attribute("aria-invalid") == "true"
    assert page.js("return document.activeElement.id") == "api-key"
    assert api.json()["detail"] not in page.visible_text()  # words for a person, not the header names
    page.type_into("#api-key", "wrong")
    page.enter("#api-key")  # Enter in the key field retries
    assert page.problems("key-problem")[0].startswith("This API key was not accepted")
    page.type_into("#api-key", KEY)
    page.enter("#api-key")
    page.key = KEY
    assert page.answer() == api_predict(page, task, body).json()["outputs"][0]
    assert page.find("#api-key").get_attribute("aria-invalid") is None
    # Kept for this tab only: sessionStorage, never localStorage or a cookie; a reload keeps it.
    assert browser.execute_script("return sessionStorage.getItem('toyseq.apiKey')") == KEY
    assert browser.execute_script("return localStorage.length") == 0
    assert browser.get_cookies() == []
    browser.refresh()
    page.wait(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    assert page.find("#api-key").get_attribute("value") == KEY


@pytest.mark.slow
def test_no_key_note_when_the_service_needs_none(browser, services, width):
    server, _ = services["open"]
    page = Page(browser, server.base_url, width).open()
    assert page.find("#key-note").text == "Only needed if the service requires one."


def _js_number(value) -> str:
    """How JavaScript prints a JSON number: -1000000.0 arrives as -1000000."""
    return str(int(value)) if float(value).is_integer() else repr(value)


# ---- issue 33: the domain, long answers, counts, curves, and what a learner reaches for --------------


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two CSS colours given as rgb(...) or #rrggbb."""

    def luminance(colour: str) -> float:
        colour = colour.strip()
        if colour.startswith("#"):
            rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        else:
            rgb = [int(float(v)) for v in re.findall(r"[\d.]+", colour)[:3]]
        lin = [(c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.slow
def test_an_input_outside_the_domain_is_said_in_words(page):
    for task, typed, rule in (
        ("ramp", "1, 5, 2", "evenly spaced"),
        ("arith-next", "1, 2, 30, 4, 50, 6, 7", "progression"),
        ("alternating", "1, 1, 0", "alternating"),
    ):
        page.choose(task)
        page.type_into("#sequence", typed)
        page.press("#predict")
        sequence = [int(v) if v.is_integer() else v for v in numbers(typed)]
        api = api_predict(page, task, {"inputs": [sequence]}).json()
        assert api["in_domain"] == [False] and page.answer() == api["outputs"][0]  # the answer is still shown
        note = page.find("#domain-note")
        assert note.is_displayed() and f"not of the kind {task} was built for" in note.text, task
        assert rule in note.text and "no meaning" in note.text
        text = page.find("#result").text
        assert "Shown to" not in text and "vouches" not in text  # no precision promised for a meaningless answer
        assert not page.find_all("#expected") and not page.find_all("#wrong-value")
        card = page.find(f"#card-{task} .domain").get_attribute("textContent")
        assert rule in card
    page.choose("ramp")
    page.type_into("#sequence", "0.5, 0.75, 1")
    page.press("#predict")
    assert not page.find_all("#domain-note") and "Shown to" in page.find("#result").text
    assert page.find("#expected").get_attribute("data-right") == "true"


@pytest.mark.slow
def test_the_expected_answer_marks_and_arith_next_says_when_nothing_was_wrong(page):
    page.choose("arith-next")
    page.type_into("#sequence", "10, 20, 30, 40, 50, 60, 70")
    page.press("#predict")
    assert page.answer() == 80 and "judged every value right" in page.find("#wrong-value").text
    expected = page.find("#expected")
    assert expected.get_attribute("data-right") == "true" and "Expected: 80" in expected.text
    page.choose("echo-lag")
    page.type_into("#sequence", "5 3 8")
    page.press("#predict")
    assert page.find("#expected").get_attribute("data-right") == "true"
    rows = page.find_all(".echo-table tr")
    cells = [[c.get_attribute("textContent") for c in r.find_elements("css selector", "td")] for r in rows]
    assert cells == [["1", "2", "3"], ["5", "3", "8"], ["", "5", "3"]]  # each output under the input it echoes


@pytest.mark.slow
def test_curl_link_reset_and_top_k(page, tmp_path):
    import os
    import subprocess

    page.choose("copy-first")
    page.type_into("#sequence", "17, 3, 65, 8")
    page.type_into("#top-k", "2")
    page.press("#predict")
    api = api_predict(page, "copy-first", {"inputs": [[17, 3, 65, 8]], "top_k": 2}).json()
    assert len(page.find_all("#result .topk li")) == 2
    command = page.find("#curl").get_attribute("textContent")
    assert (page.key or "no key") not in command  # the key itself is never written into the page's curl
    env = {**os.environ, "TOYSEQ_API_KEY": page.key or ""}
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
    assert json.loads(done.stdout) == api, done.stderr
    # the address bar and the link open the same input, and run it
    link = page.find("#share-link").get_attribute("href")
    assert "task=copy-first" in link and "top_k=2" in page.js("return location.search")
    page.driver.get(link)  # the same tab: its API key (sessionStorage) comes along
    page.wait(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    assert page.answer() == api["outputs"][0] and len(page.find_all("#result .topk li")) == 2
    assert page.find("#sequence").get_attribute("value") == "17, 3, 65, 8"
    # reset puts the example back
    page.type_into("#sequence", "1 2 x")
    page.find("#reset").click()
    assert numbers(page.find("#sequence").get_attribute("value")) == example(page, "copy-first")
    # a bad top k is refused at its field, nothing sent
    sent = page.predicts()
    page.type_into("#top-k", "0")
    page.press("#predict")
    assert "Top k must be a whole number" in page.problems("steps-problem")[0] and page.predicts() == sent


@pytest.mark.slow
def test_long_rollouts_and_long_lists_stay_readable(page):
    page.choose("alternating")
    page.type_into("#steps", "1000")
    page.press("#rollout")
    chart = page.find("#result svg.chart")
    assert chart.get_attribute("data-dense") == "true" and not chart.find_elements("css selector", "polyline")
    chips = page.find_all("#answer-value li")
    assert len(chips) == 40 and chips[0].get_attribute("data-pos") == str(len(example(page, "alternating")) + 1)
    tall = page.js("return document.getElementById('result').getBoundingClientRect().height")
    assert tall < 2500, tall  # the answer was 6,154 px tall on a phone
    label = page.find("#result .answer dt:nth-of-type(2)")
    values = page.find("#result .answer dd:nth-of-type(2)")
    if page.width == "phone":  # the label above its values, which get the whole width
        assert values.location["y"] > label.location["y"] and values.size["width"] > 300
    page.find("#result .more-values").click()
    assert (
        len(page.find_all("#answer-value li")) == 1000
        and page.answer()
        == api_predict(page, "alternating", {"inputs": [example(page, "alternating")], "steps": 1000}).json()[
            "outputs"
        ][0]
    )
    # positions shown by CSS, not part of the value's text
    first = page.find("#answer-input li")
    assert page.js("return getComputedStyle(arguments[0], '::before').content", first) == '"1"'
    assert first.text == str(example(page, "alternating")[0])


@pytest.mark.slow
def test_problem_counts_are_the_apis_and_long_lists_are_cut(page):
    page.choose("echo")
    page.type_into("#sequence", " ".join(["100"] * 300))
    page.press("#predict")
    assert len(page.problems("sequence-problem")) == 20
    assert page.find("#sequence-problem .problem-count").text == "300 problems in all; the first 20 are listed."
    page.type_into("#sequence", " ".join(["x"] * 300))
    page.press("#predict")
    assert len(page.problems("sequence-problem")) == 20
    assert "300 problems in all" in page.find("#sequence-problem .problem-count").text
    height = page.js(
        "return document.querySelector('#sequence-problem .problem-errors').getBoundingClientRect().height"
    )
    assert height < 1200, height  # was 7,212 px


@pytest.mark.slow
def test_top_k_percentages_focus_ring_and_dark_mode(page):
    page.choose("copy-first")
    page.type_into("#sequence", "17, 3, 65, 8")
    page.type_into("#top-k", "5")
    page.press("#predict")
    for bar in page.find_all("#result .topk li"):
        p = float(bar.get_attribute("data-p"))
        text = bar.find_element("css selector", ".p").text
        assert p == 0 or text not in ("0.0%", "0%"), (p, text)
        if 0 < p < 0.001:
            assert float(text.rstrip("%")) == pytest.approx(p * 100, rel=0.05), (p, text)
    for scheme in ("light", "dark"):
        page.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
        )
        style = "return getComputedStyle(document.documentElement).getPropertyValue(arguments[0]).trim()"
        focus, card, paper, ink = (page.js(style, v) for v in ("--focus", "--card", "--paper", "--ink"))
        assert min(contrast(focus, card), contrast(focus, paper)) >= 3, (scheme, focus)  # WCAG 1.4.11
        body = page.js("return getComputedStyle(document.body.parentElement).backgroundColor")
        assert contrast(ink, paper) >= 4.5 and contrast(ink, card) >= 4.5
        assert (contrast(body, "#000000") < 3) == (scheme == "dark"), (scheme, body)
    page.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    # the phone gets no "hover" advice; every figure's full value is in the response JSON instead
    page.choose("ramp")
    page.press("#predict")
    assert "hover" not in page.find("#result").text.lower()


@pytest.mark.slow
def test_training_curves_come_back_after_the_service_does(browser, services, width):
    server, _ = services["open"]
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*training.png*"]})
    try:
        page = Page(browser, server.base_url, width).open()
        page.js("document.getElementById('catalogue').scrollIntoView()")
        page.js("window.scrollTo(0, document.body.scrollHeight)")
        page.wait(lambda d: len(page.find_all(".curve-failed")) >= 1)
        assert not [p for p in page.find_all(".hint") if p.text == "No training curve."]
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        browser.execute_cdp_cmd("Network.disable", {})
    holder = page.find(".curve-holder[data-failed='true']")
    holder.find_element("css selector", ".curve-retry").click()
    page.wait(
        lambda d: d.execute_script(
            "const i = arguments[0].querySelector('img'); return !!i && i.complete && i.naturalWidth > 0", holder
        )
    )
    # a good answer from the service retries the others, which then load
    page.press("#predict")
    page.wait(lambda d: not page.find_all(".curve-failed"))
    loaded = "return [...document.querySelectorAll('.curve img')].every(i => i.complete && i.naturalWidth > 0)"
    page.wait(lambda d: d.execute_script(loaded))
    assert len(page.find_all(".curve img")) == len([t for t in listing(page) if t["available"]])
