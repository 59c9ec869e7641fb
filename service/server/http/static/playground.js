// toyseq playground: lists the tasks (GET /tasks) and sends what the user types to
// POST /tasks/<name>/predict. Input that could be read two ways (a decimal comma, an empty item) is
// refused here, in words; everything else goes to the API, whose located errors are shown at the value
// they concern. URLs are relative, so the page also works behind a proxy that mounts the service under a prefix.
"use strict";

const KEY_STORAGE = "toyseq.apiKey"; // sessionStorage only: the key leaves with the tab
const TOP_K = 5;
const SVG_NS = "http://www.w3.org/2000/svg";
const SHOWN_PROBLEMS = 20; // problems listed at a field; the rest are counted
const SHOWN_VALUES = 40; // chips of a long answer shown before "Show all"
const DENSE = 3; // px per value below which the rollout chart draws dots without lines

const state = {
  tasks: new Map(), details: new Map(), drafts: new Map(), topK: new Map(), current: null,
  busy: false, lastRollout: false, keyRequired: false, chart: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- talking to the service -------------------------------------------------------------------

function taskUrl(name, rest = "") {
  return "tasks/" + encodeURIComponent(name) + rest;
}

async function call(url, body) {
  const headers = { Accept: "application/json" };
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
    const key = $("api-key").value.trim();
    if (key) headers.Authorization = "Bearer " + key;
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    return { ok: false, status: 0, body: null }; // no answer at all: the service is down or unreachable
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch (err) {
    parsed = null; // not JSON (a proxy's error page): worded from the status alone
  }
  return { ok: response.ok, status: response.status, statusText: response.statusText, body: parsed };
}

// ---- reading what the user typed ----------------------------------------------------------------

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

// The typed sequence as numbers, or the reasons it cannot be read without guessing:
// {items, values} or {items, problems: [{index, message}]} (index null: the whole sequence).
function parseSequence(text) {
  let body = text.trim();
  if (body.startsWith("[") && body.endsWith("]")) body = body.slice(1, -1).trim();
  if (body === "") return { items: [], problems: [{ index: null, message: "The sequence is empty: type at least one value." }] };
  // "0,5 1,0" or "0,5, 1,0, 1,5" is either several values or decimals written with commas: a comma between
  // two digits, beside separators that have spaces, is refused rather than guessed ("1,2,3" is three values).
  const comma = body.match(/(?:^|[\s,])([-+]?\d+,\d+)(?=[\s,]|$)/);
  if (comma && /\s/.test(body)) {
    return { items: [], problems: [{ index: null, message:
      `“${comma[1]}” could be one number with a decimal comma or two values: write decimals with a point ` +
      `(${comma[1].replace(",", ".")}) and separate values with commas or spaces.` }] };
  }
  const items = body.split(/\s*,\s*|\s+/);
  const problems = [];
  items.forEach((item, i) => {
    if (item === "") {
      const where = i === 0 ? "before the first value" : i === items.length - 1 ? "after the last value"
        : `between value ${i} and the next`;
      problems.push({ index: i, note: "empty", message: `There is an empty item ${where} (an extra comma): remove it.` });
    } else if (!NUMBER.test(item) || !Number.isFinite(Number(item))) {
      problems.push({ index: i, note: "not a number", message: `Value ${i + 1}, “${item}”, is not a number.` });
    }
  });
  if (problems.length) return { items, problems };
  return { items, values: items.map(Number) };
}

// Steps (or Top k) as a whole number 1..max, or a sentence saying what is wrong with it.
function parseSteps(text, max, name = "Steps") {
  const typed = text.trim();
  if (typed === "") return { problem: `${name} is empty: type a whole number from 1 to ${max}.` };
  if (!/^\d+$/.test(typed) || Number(typed) < 1 || Number(typed) > max) {
    return { problem: `${name} must be a whole number from 1 to ${max}; “${typed}” is not.` };
  }
  return { steps: Number(typed) };
}

// ---- showing numbers ----------------------------------------------------------------------------

// How many decimals of a float task's answer its evaluation vouches for: the gate's largest error (in
// steps of the window, or absolute for constant windows) sets the last digit worth showing. Integer
// tasks are exact. Anything past that digit is float noise (0.30000000000000004).
function decimalsFor(task, input, steps) {
  if (task.output.dtype === "int") return null;
  const gates = task.evaluation || [];
  let largestStep = 0;
  for (let i = 1; i < input.length; i++) largestStep = Math.max(largestStep, Math.abs(input[i] - input[i - 1]));
  const metric = largestStep === 0 ? "max_value_error" : "max_step_error";
  const wanted = steps || 1;
  const fit = gates.filter((g) => g.metric === metric)
    .sort((a, b) => (a.steps || 1) - (b.steps || 1));
  const gate = fit.find((g) => (g.steps || 1) >= wanted) || fit[fit.length - 1];
  if (!gate) return 6;
  const tolerance = gate.threshold * (largestStep === 0 ? 1 : largestStep);
  return Math.min(15, Math.max(0, Math.ceil(-Math.log10(tolerance))));
}

function formatValue(v, decimals) {
  if (typeof v !== "number") return String(v);
  if (decimals === null || Number.isInteger(v)) return String(v);
  return String(Number(v.toFixed(decimals)));
}

// A list of values as chips that wrap between values, never inside one, each numbered by its position (drawn
// by CSS from data-pos, so it is not part of the value's text); the full value on hover. A long list shows its
// first SHOWN_VALUES chips and a button for the rest (a 1000-step rollout would be metres of chips on a phone).
function valueList(values, decimals, marks = new Map(), id, first = 1) {
  const list = el("ol", { class: "values", id });
  const add = (from, to) => {
    for (let i = from; i < to; i++) {
      const v = values[i];
      const shown = formatValue(v, decimals);
      const note = marks.get(i);
      const title = `value ${i + first}: ${v}` + (note ? ` (${note})` : "");
      const item = el("li", { title, "data-full": String(v), "data-pos": i + first },
        note ? el("mark", { text: shown }) : shown);
      if (note) item.classList.add("marked");
      list.append(item);
    }
  };
  if (values.length <= SHOWN_VALUES + 10) {
    add(0, values.length);
    return list;
  }
  add(0, SHOWN_VALUES);
  const more = el("button", { type: "button", class: "secondary more-values",
    text: `Show all ${values.length.toLocaleString("en-US")} values` });
  more.addEventListener("click", () => { more.remove(); add(SHOWN_VALUES, values.length); });
  const wrap = el("div", { class: "values-wrap" }, list, more);
  wrap.dataset.json = JSON.stringify(values);
  return wrap;
}

// ---- the task catalogue -----------------------------------------------------------------------

function contractText(input) {
  const type = input.dtype === "int" ? "integers" : "numbers";
  const length = input.min_length === input.max_length ? `exactly ${input.min_length}`
    : `${input.min_length} to ${input.max_length}`;
  let text = `${type} in ${input.low}..${input.high}, length ${length}`;
  if (input.min_relative_step) {
    text += `; a window that is not constant needs a step of at least ${input.min_relative_step} x its largest |value|`;
  }
  return text;
}

function outputText(task, detail) {
  let text = { value: "one value", next: "the next value" }[task.output.kind] || task.output.kind;
  if (task.output.kind === "echo") {
    // How many positions an echo skips shows in its example: echo-lag answers nothing for the first.
    const ex = detail && detail.example;
    const skip = ex ? ex.request.body.inputs[0].length - ex.expected_outputs[0].length : 0;
    text = skip > 0 ? `a list: one value per input position from position ${skip + 1} on (n inputs give n - ${skip})`
      : "a list: one value per input position";
  }
  text += task.output.dtype === "int" ? ", an integer" : ", a number";
  if (task.rollout) text += `; rolls out up to ${task.max_steps} steps`;
  if (task.top_k) text += "; top-k class probabilities";
  return text;
}

// A measured figure as a person reads it: 0.9931959175505303 -> "0.9932", 2.837e-11 -> "2.84e-11".
function figure(v) {
  if (typeof v !== "number" || Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(2) : String(+v.toPrecision(4));
}

// snake_case names may break after an underscore, never inside a word.
function breakable(name) {
  const span = el("span");
  name.split("_").forEach((part, i, parts) => {
    span.append(part + (i < parts.length - 1 ? "_" : ""));
    if (i < parts.length - 1) span.append(el("wbr"));
  });
  return span;
}

const COLUMNS = ["category", "metric", "needs", "got", "n", "passed"];
// Metrics that are a share of answers: shown as a percentage, so "needs ≥ 1, got 1" reads "needs 100%, got 100%".
const SHARES = new Set(["exact", "exact_worst_position"]);

function gateFigure(gate, v) {
  if (!SHARES.has(gate.metric)) return figure(v);
  const percent = v * 100;
  return (Number.isInteger(percent) ? String(percent) : String(+percent.toPrecision(4))) + "%";
}

function gatesTable(task, name) {
  const ops = { ">=": "≥", "<=": "≤" };
  // Explicit roles: on a phone the rows are restyled as blocks, which would otherwise drop table semantics.
  const table = el("table", { class: "gates", role: "table" },
    el("caption", { text: `Evaluation of ${name}` }),
    el("thead", { role: "rowgroup" },
      el("tr", { role: "row" }, ...COLUMNS.map((c) => el("th", { scope: "col", role: "columnheader", text: c })))));
  const body = el("tbody", { role: "rowgroup" });
  for (const gate of task.evaluation || []) {
    const metric = breakable(gate.metric);
    if (gate.steps) metric.append(`, ${gate.steps}-step rollout`);
    body.append(el("tr", { role: "row" },
      el("th", { scope: "row", role: "rowheader", "data-label": "category" }, breakable(gate.category || "")),
      el("td", { role: "cell", "data-label": "metric" }, metric),
      el("td", { role: "cell", "data-label": "needs", text: `${ops[gate.op] || gate.op} ${gateFigure(gate, gate.threshold)}` }),
      el("td", { role: "cell", "data-label": "got", text: gateFigure(gate, gate.value), title: String(gate.value) }),
      el("td", { role: "cell", "data-label": "n", class: "n", text: gate.n.toLocaleString("en-US"), title: `${gate.n} examples` }),
      el("td", { role: "cell", "data-label": "passed", class: gate.passed ? "pass" : "fail", text: gate.passed ? "yes" : "no" })));
  }
  table.append(body);
  return el("div", { class: "gates-wrap" }, table);
}

function card(task) {
  const heading = el("h3", { id: `card-${task.name}-title`, text: task.name });
  const article = el("article", { class: "card", id: `card-${task.name}`, "aria-labelledby": heading.id }, heading);
  if (!task.available) {
    heading.append(el("span", { class: "badge fail", text: "unavailable" }));
    article.append(el("p", { class: "reason", text: task.reason }));
    return article;
  }
  const picture = curveFigure(task);
  const tryIt = el("button", { type: "button", class: "secondary", text: `Try ${task.name}` });
  tryIt.addEventListener("click", () => {
    $("task").value = task.name;
    selectTask(task.name);
    $("try").scrollIntoView({ behavior: "smooth" });
    $("sequence").focus({ preventScroll: true });
  });
  article.append(
    el("p", { class: "description", text: task.description }),
    el("dl", { class: "contract" },
      el("dt", { text: "Input" }), el("dd", { class: "input-contract", text: contractText(task.input) }),
      el("dt", { text: "Output" }), el("dd", { class: "output-kind", text: outputText(task) }),
      el("dt", { text: "Domain" }), el("dd", { class: "domain", text: task.domain ? task.domain.description : "" })),
    gatesTable(task, task.name),
    picture,
    tryIt);
  return article;
}

// The training curve, a link to it at full size (its text is small on a phone), and when it fails to load: "No
// training curve." only when the service says there is none (404); otherwise a note and a button to try again,
// and another try after the next answer from the service.
function curveFigure(task) {
  const src = taskUrl(task.name, "/training.png");
  const holder = el("div", { class: "curve-holder", "data-task": task.name });
  const show = (bust) => {
    const img = el("img", { src: bust ? `${src}?retry=${Date.now()}` : src, width: 600, height: 350,
                            loading: bust ? "eager" : "lazy",
                            alt: `Training curve of ${task.name}: training and validation loss per step` });
    const picture = el("figure", { class: "curve" }, img,
      el("figcaption", {}, "Training curve · ", el("a", { href: src, target: "_blank", text: "open full size" })));
    img.addEventListener("error", async () => {
      let status = 0;
      try { status = (await fetch(src, { method: "HEAD" })).status; } catch (err) { status = 0; }
      if (status === 404) {
        holder.replaceChildren(el("p", { class: "hint", text: "No training curve." }));
        return;
      }
      const again = el("button", { type: "button", class: "secondary curve-retry", text: "Try again" });
      again.addEventListener("click", () => show(true));
      holder.dataset.failed = "true";
      holder.replaceChildren(el("p", { class: "hint curve-failed",
        text: "The training curve could not be loaded (the service did not answer)." }), again);
    });
    delete holder.dataset.failed;
    holder.replaceChildren(picture);
    holder.retry = () => show(true);
  };
  show(false);
  return holder;
}

function retryCurves() {
  for (const holder of document.querySelectorAll(".curve-holder[data-failed='true']")) holder.retry();
}

async function loadDetail(name) {
  if (!state.details.has(name)) {
    const answer = await call(taskUrl(name));
    if (answer.ok) {
      state.details.set(name, answer.body);
      const dd = document.querySelector(`#card-${CSS.escape(name)} .output-kind`);
      if (dd) dd.textContent = outputText(state.tasks.get(name), answer.body);
    }
  }
  return state.details.get(name);
}

// ---- the try-it form --------------------------------------------------------------------------

async function selectTask(name) {
  const task = state.tasks.get(name);
  state.current = task;
  $("task-description").textContent = task.description;
  $("sequence-hint").textContent = "Values separated by commas or spaces (decimals with a point): "
    + contractText(task.input) + ".";
  $("rollout-controls").hidden = !task.rollout;
  if (task.rollout) $("steps-hint").textContent = `1 to ${task.max_steps}`;
  $("top-k-controls").hidden = !task.top_k;
  if (task.top_k) {
    $("top-k-hint").textContent = `1 to ${task.max_top_k}`;
    $("top-k").value = state.topK.get(name) ?? String(Math.min(TOP_K, task.max_top_k)); // per task, as typed
  }
  clearProblems();
  $("result").replaceChildren();
  state.chart = null;
  const draft = state.drafts.get(name);
  if (draft !== undefined) {
    $("sequence").value = draft;
    $("sequence").dataset.task = name;
    return;
  }
  const detail = await loadDetail(name);
  if (detail && state.current === task && !state.drafts.has(name)) {
    $("sequence").value = detail.example.request.body.inputs[0].join(", ");
    $("sequence").dataset.task = name; // which task the field holds
  }
}

function clearProblems() {
  for (const id of ["sequence", "steps", "top-k", "api-key"]) $(id).removeAttribute("aria-invalid");
  for (const id of ["sequence-problem", "steps-problem", "key-problem"]) $(id).replaceChildren();
}

function setBusy(busy) {
  state.busy = busy;
  $("busy").hidden = !busy;
  $("predict-form").setAttribute("aria-busy", String(busy));
  for (const id of ["predict", "rollout"]) {
    if (busy) $(id).setAttribute("aria-disabled", "true");
    else $(id).removeAttribute("aria-disabled");
  }
}

// A problem shown under the field it concerns; the field is marked invalid.
function fieldProblem(field, messages, strip, total = messages.length) {
  const box = el("div", { class: "problem" });
  if (strip) box.append(strip);
  const shown = messages.slice(0, SHOWN_PROBLEMS);
  const list = el("ul", { class: "problem-errors" }, ...shown.map((m) => el("li", { class: "message", text: m })));
  box.append(list);
  if (total > shown.length) {
    box.append(el("p", { class: "hint problem-count",
      text: `${total.toLocaleString("en-US")} problems in all; the first ${shown.length} are listed.` }));
  }
  $(field).setAttribute("aria-invalid", "true");
  const holder = { sequence: "sequence-problem", steps: "steps-problem", "top-k": "steps-problem",
                   "api-key": "key-problem" }[field];
  $(holder).replaceChildren(box);
}

async function run(withSteps) {
  const task = state.current;
  if (!task || state.busy) return; // one request at a time: repeated clicks and Enters send nothing more
  state.lastRollout = withSteps;
  clearProblems();
  const typed = parseSequence($("sequence").value);
  let steps = null;
  const parsedSteps = withSteps ? parseSteps($("steps").value, task.max_steps) : null;
  const parsedTopK = !withSteps && task.top_k ? parseSteps($("top-k").value, task.max_top_k, "Top k") : null;
  if (typed.problems || (parsedSteps && parsedSteps.problem) || (parsedTopK && parsedTopK.problem)) {
    $("result").replaceChildren();
    if (typed.problems) {
      const marks = new Map(typed.problems.filter((p) => p.index !== null).map((p) => [p.index, p.note]));
      const strip = marks.size ? valueList(typed.items.map((s) => (s === "" ? "␣" : s)), null, marks) : null;
      fieldProblem("sequence", typed.problems.map((p) => p.message), strip);
    }
    if (parsedSteps && parsedSteps.problem) fieldProblem("steps", [parsedSteps.problem]);
    if (parsedTopK && parsedTopK.problem) fieldProblem("top-k", [parsedTopK.problem]);
    return;
  }
  if (withSteps) steps = parsedSteps.steps;
  const input = typed.values;
  const body = { inputs: [input] };
  if (withSteps) body.steps = steps;
  else if (parsedTopK) body.top_k = parsedTopK.steps;
  setBusy(true);
  let answer;
  try {
    answer = await call(taskUrl(task.name, "/predict"), body);
  } finally {
    setBusy(false);
  }
  if (state.current !== task) return; // the user switched task meanwhile
  if (!answer.ok) {
    showProblem(answer, input, task);
    return;
  }
  showAnswer(answer.body, input, task, steps, body);
  history.replaceState(null, "", shareUrl(task, body)); // the address bar is a link to what was just asked
  retryCurves(); // the service answers again: curves that failed to load get another chance
}

function showAnswer(reply, input, task, steps, body) {
  const result = $("result");
  const output = reply.outputs[0];
  const inDomain = !reply.in_domain || reply.in_domain[0] !== false;
  const decimals = decimalsFor(task, input, steps);
  const wrong = reply.wrong_position ? reply.wrong_position[0] : null;
  const marks = new Map();
  if (wrong !== null && wrong !== undefined) marks.set(wrong, "judged wrong");
  const answer = Array.isArray(output) ? valueList(output, decimals, new Map(), "answer-value", steps ? input.length + 1 : 1)
    : el("span", { id: "answer-value", title: String(output), text: formatValue(output, decimals) });
  const answerValue = answer.id === "answer-value" ? answer : answer.querySelector("#answer-value");
  answerValue.dataset.json = JSON.stringify(output);
  const parts = [];
  if (!inDomain) {
    const detail = state.details.get(task.name);
    const rule = detail && detail.domain ? detail.domain.description : "";
    parts.push(el("div", { id: "domain-note", class: "domain-note", role: "note" },
      el("p", { class: "domain-title", text: `This input is not of the kind ${task.name} was built for.` }),
      el("p", { text: (rule ? `The task expects ${rule}. ` : "")
        + "The model still answers (the input is valid), but its answer below has no meaning for this input." })));
  }
  parts.push(el("dl", { class: "answer" },
    el("dt", { text: "Input" }), el("dd", {}, valueList(input, null, marks, "answer-input")),
    el("dt", { text: steps ? `Next ${output.length} values` : "Answer" }), el("dd", {}, answer)));
  if (task.output.kind === "echo" && Array.isArray(output)) parts.push(echoTable(input, output));
  const expected = inDomain ? expectedAnswer(task, input, steps) : null;
  if (expected !== null) parts.push(expectation(expected, output, decimals));
  if (marks.size && inDomain) {
    parts.push(el("p", { id: "wrong-value", class: "wrong-note" },
      `The model judged value ${wrong + 1} (${input[wrong]}) wrong: it does not fit the progression, and the answer `
      + "continues the other values."));
  } else if (reply.wrong_position && inDomain) {
    parts.push(el("p", { id: "wrong-value", class: "hint" },
      "The model judged every value right: the answer continues all seven."));
  }
  if (decimals !== null && inDomain) {
    parts.push(el("p", { class: "hint", text: `Shown to ${decimals} decimals, the precision this task's evaluation `
      + "vouches for; the full numbers are in the response JSON below." }));
  }
  if (steps) parts.push(el("figure", { class: "chart-figure" }));
  if (reply.top_k) parts.push(topKBars(reply.top_k[0]));
  parts.push(el("details", { class: "raw" }, el("summary", { text: "Response JSON" }),
    el("pre", { text: JSON.stringify(reply, null, 2) })));
  parts.push(curlBlock(task, body));
  result.replaceChildren(...parts);
  if (steps) {
    state.chart = { input, output, name: task.name, decimals, wrong };
    drawChart();
  }
}

// Echo answers lined up under the inputs they echo: position, input, output (echo-lag's first has none).
function echoTable(input, output) {
  const skip = input.length - output.length;
  const row = (label, cells) => el("tr", {}, el("th", { scope: "row", text: label }), ...cells);
  const table = el("table", { class: "echo-table" },
    el("caption", { class: "hint", text: "Each output under the input position it answers" }),
    el("tbody", {},
      row("position", input.map((_, i) => el("td", { class: "pos", text: String(i + 1) }))),
      row("input", input.map((v) => el("td", { text: String(v) }))),
      row("output", input.map((_, i) => el("td", { class: "echo-out", text: i < skip ? "" : String(output[i - skip]) })))));
  return el("div", { class: "echo-wrap", tabindex: "0", role: "region", "aria-label": "Outputs under their inputs" }, table);
}

// The right answer for an input of the task's kind, by the rule each task's name stands for (training/catalog.py
// gives the same rule as its `truth`); null for a task this page does not know. `steps`: the next `steps` values.
const RULES = {
  echo: (x) => x,
  "echo-lag": (x) => x.slice(0, -1),
  "second-element": (x) => x[1],
  "sum-first-two": (x) => x[0] + x[1],
  "copy-first": (x) => x[0],
  "last-value": (x) => x[x.length - 1],
};
const NEXT = {
  alternating: (x, k) => Array.from({ length: k }, (_, i) => (i % 2 === 0 ? 1 - x[x.length - 1] : x[x.length - 1])),
  ramp: (x, k) => {
    const step = (x[x.length - 1] - x[0]) / (x.length - 1);
    return Array.from({ length: k }, (_, i) => x[x.length - 1] + step * (i + 1));
  },
  "arith-next": (x, k) => {
    const last = x.length - 1;
    // the step that puts all but at most one of the values before the last on the progression (the domain)
    for (const step of [x[last] - x[last - 1], (x[last] - x[last - 2]) / 2]) {
      const off = x.slice(0, last).filter((v, i) => v !== x[last] - (last - i) * step).length;
      if (Number.isInteger(step) && off <= 1) return Array.from({ length: k }, (_, i) => x[last] + step * (i + 1));
    }
    return null;
  },
};

function expectedAnswer(task, input, steps) {
  if (NEXT[task.name]) {
    const next = NEXT[task.name](input, steps || 1);
    return next === null ? null : steps ? next : next[0];
  }
  return RULES[task.name] && !steps ? RULES[task.name](input) : null;
}

function expectation(expected, output, decimals) {
  const tolerance = decimals === null ? 0 : 0.5 * 10 ** -decimals;
  const same = (a, b) => (Array.isArray(a) ? a.length === b.length && a.every((v, i) => same(v, b[i]))
    : Math.abs(a - b) <= tolerance);
  const right = same(output, expected);
  const shown = Array.isArray(expected) ? expected.map((v) => formatValue(v, decimals)).join(", ")
    : formatValue(expected, decimals);
  return el("p", { id: "expected", class: right ? "expected right" : "expected wrong", "data-right": String(right) },
    el("span", { class: "mark", "aria-hidden": "true", text: right ? "✓" : "✗" }),
    ` Expected: ${shown}. The model is ${right ? "right" : "wrong"}` + (decimals === null ? "." : " to the decimals shown."));
}

// The request just made, as a curl command to copy (the key stays out of it: $TOYSEQ_API_KEY), and a link
// that opens this page on the same task and input.
function curlBlock(task, body) {
  const url = new URL(taskUrl(task.name, "/predict"), document.baseURI).href;
  const json = JSON.stringify(body).replace(/'/g, "'\\''");
  let command = `curl -s -X POST '${url}' -H 'Content-Type: application/json'`;
  if ($("api-key").value.trim()) command += ' -H "Authorization: Bearer $TOYSEQ_API_KEY"';
  command += ` -d '${json}'`;
  const pre = el("pre", { id: "curl", text: command });
  const copy = el("button", { type: "button", class: "secondary", text: "Copy" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(command);
      copy.textContent = "Copied";
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents(pre);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      copy.textContent = "Selected: press Ctrl+C";
    }
  });
  const link = el("a", { id: "share-link", href: shareUrl(task, body), text: "Link to this input" });
  return el("details", { class: "raw curl" }, el("summary", { text: "As curl, or a link" }), pre,
    el("p", {}, copy, " ", link));
}

function shareUrl(task, body) {
  const params = new URLSearchParams({ task: task.name, input: body.inputs[0].join(",") });
  if (body.steps) params.set("steps", String(body.steps));
  if (body.top_k) params.set("top_k", String(body.top_k));
  return "?" + params.toString();
}

// ---- errors, in words, at the value they concern -------------------------------------------------

const FIELD_OF = (pointer) => {
  if (pointer.startsWith("/inputs")) return "sequence";
  if (pointer === "/steps") return "steps";
  return null;
};

// "/inputs/0/1" is the second value the user typed: say so, counting from 1.
function located(pointer, message, input) {
  const m = pointer.match(/^\/inputs\/0\/(\d+)$/);
  if (m) return { index: Number(m[1]), text: `Value ${Number(m[1]) + 1}: ${message}` };
  if (pointer === "/inputs/0" || pointer === "/inputs") return { index: null, text: `The sequence: ${message}` };
  if (pointer === "/steps") return { index: null, text: `Steps: ${message}` };
  return { index: null, text: message };
}

function showProblem(answer, input, task) {
  const result = $("result");
  result.replaceChildren();
  const p = answer.body || {};
  if (answer.status === 401) {
    const key = $("api-key").value.trim();
    fieldProblem("api-key", [key ? "This API key was not accepted: check it, then press Enter here to try again."
      : "No API key was given, and this service needs one: type it here, then press Enter."]);
    $("api-key").focus();
    return;
  }
  const errors = Array.isArray(p.errors) ? p.errors : [];
  const byField = new Map();
  for (const e of errors) {
    const field = FIELD_OF(e.pointer || "") || "result";
    if (!byField.has(field)) byField.set(field, []);
    byField.get(field).push(located(e.pointer || "", e.message, input));
  }
  for (const [field, items] of byField) {
    if (field === "result") continue;
    const marks = new Map(items.filter((i) => i.index !== null).map((i) => [i.index, "not accepted"]));
    const strip = field === "sequence" && marks.size ? valueList(input, null, marks) : null;
    fieldProblem(field, items.map((i) => i.text), strip);
  }
  const general = byField.get("result") || [];
  if (errors.length && !general.length) {
    if (p.errors_total > errors.length) {
      const holder = byField.has("sequence") ? "sequence-problem" : "steps-problem";
      $(holder).firstChild?.append(el("p", { class: "hint problem-count",
        text: `${p.errors_total.toLocaleString("en-US")} problems in all; the first ${errors.length} are listed.` }));
    }
    return;
  }
  const box = el("div", { class: "problem", role: "alert" });
  box.append(el("p", { class: "problem-title", text: problemTitle(answer, task) }));
  const detail = general.length ? general.map((g) => g.text).join("; ") : p.detail;
  if (detail) box.append(el("p", { class: "problem-detail", text: detail }));
  result.replaceChildren(box);
}

function problemTitle(answer, task) {
  switch (answer.status) {
    case 0: return "The service did not answer: it may be down or restarting. Check that it runs, then try again.";
    case 413: return "The request is too large for this service.";
    case 422: return "The request was not accepted.";
    case 429: return "The service is busy: try again in a moment.";
    case 503: return `${task ? task.name : "This task"} cannot be served right now.`;
    default: {
      const title = answer.body && answer.body.title ? answer.body.title : answer.statusText;
      return `The service answered ${answer.status}${title ? " " + title : ""}.`;
    }
  }
}

// ---- top-k bars and the rollout chart -------------------------------------------------------------

// A probability as a percentage that never shows a non-zero chance as 0.0%: 3.7e-5 is "0.0037%".
function percentText(p) {
  const percent = p * 100;
  if (percent === 0) return "0%";
  if (percent >= 0.1) return percent.toFixed(1) + "%";
  if (percent < 1e-6) return "< 0.000001%";
  return Number(percent.toPrecision(2)).toString() + "%";
}

function topKBars(choices) {
  const list = el("ol", { class: "topk" });
  for (const { value, p } of choices) {
    const percent = percentText(p);
    const bar = el("span", { class: "bar" });
    bar.style.width = Math.max(p * 100, 0.5) + "%";
    list.append(el("li", { "data-value": value, "data-p": p, "aria-label": `value ${value}: probability ${percent}` },
      el("span", { class: "value", text: String(value) }),
      el("span", { class: "track", "aria-hidden": "true" }, bar),
      el("span", { class: "p", text: percent })));
  }
  return el("figure", { class: "topk-figure" }, el("figcaption", { text: "Most likely values" }), list);
}

// Position ticks at least ~44 px apart: 1, then multiples of a 1-2-5 step, and always the last.
function positionTicks(n, width) {
  const room = Math.max(1, Math.floor(width / 44));
  let step = 1;
  for (const base of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]) {
    step = base;
    if (Math.ceil(n / base) <= room) break;
  }
  const ticks = [1];
  for (let p = step; p < n; p += step) if (p - ticks[ticks.length - 1] >= step / 2 && p > 1) ticks.push(p);
  if (n > 1) {
    if (n - ticks[ticks.length - 1] < step / 2 && ticks.length > 1) ticks.pop();
    ticks.push(n);
  }
  return ticks;
}

// The input and its rollout as one line, drawn at the figure's real width so that 12 px text is 12 px
// on a phone too. The rollout's line starts at the last input value, so it visibly continues the sequence.
function drawChart() {
  const figure = document.querySelector("#result .chart-figure");
  if (!figure || !state.chart) return;
  const { input, output, name, decimals, wrong } = state.chart;
  const values = [...input, ...output];
  const W = Math.max(260, Math.min(720, Math.floor(figure.clientWidth))), H = W < 480 ? 220 : 260;
  let lo = Math.min(...values), hi = Math.max(...values);
  const flat = lo === hi;
  const labels = flat ? [hi] : [hi, (hi + lo) / 2, lo];
  const texts = labels.map((v) => formatValue(v, decimals === null ? 6 : decimals));
  const left = Math.max(36, 10 + 7.5 * Math.max(...texts.map((t) => t.length)));
  const right = 16, top = 14, bottom = 40;
  if (flat) { lo -= 1; hi += 1; }
  const x = (i) => left + (values.length === 1 ? 0 : (i * (W - left - right)) / (values.length - 1));
  const y = (v) => top + ((hi - v) * (H - top - bottom)) / (hi - lo);
  const points = (from, to) => values.slice(from, to).map((v, j) => `${x(from + j).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const label = `Line chart of ${name}: ${input.length} input values followed by ${output.length} rolled-out values`;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart", role: "img", "aria-label": label });
  root.append(svg("title", {}, label));
  root.append(svg("line", { class: "axis", x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }));
  root.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }));
  labels.forEach((v, i) => {
    if (v !== labels[labels.length - 1] || flat) root.append(svg("line", { class: "grid", x1: left, y1: y(v), x2: W - right, y2: y(v) }));
    root.append(svg("text", { class: "tick y-tick", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, texts[i]));
  });
  for (const p of positionTicks(values.length, W - left - right)) {
    const at = x(p - 1);
    root.append(svg("line", { class: "axis", x1: at, y1: H - bottom, x2: at, y2: H - bottom + 4 }));
    root.append(svg("text", { class: "tick x-tick", x: at, y: H - bottom + 16, "text-anchor": "middle" }, String(p)));
  }
  root.append(svg("text", { class: "tick", x: (left + W - right) / 2, y: H - 4, "text-anchor": "middle" }, "position"));
  const split = x(input.length - 1);
  root.append(svg("line", { class: "split", x1: split, y1: top, x2: split, y2: H - bottom }));
  // Too many values for the width: lines between them would fill the plot (a 1000-step 0/1 rollout is a solid
  // block), so each value is a small dot and nothing joins them.
  const dense = (W - left - right) / values.length < DENSE;
  if (!dense) {
    root.append(svg("polyline", { class: "series-input", points: points(0, input.length) }));
    root.append(svg("polyline", { class: "series-rollout", points: points(input.length - 1, values.length) }));
  }
  root.dataset.dense = String(dense);
  values.forEach((v, i) => {
    const isWrong = i === wrong;
    const dot = svg("circle", { class: isWrong ? "dot-wrong" : i < input.length ? "dot-input" : "dot-rollout",
                                cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: isWrong ? 5 : dense ? 1.2 : values.length > 120 ? 1.5 : 3 });
    const kind = isWrong ? "input, judged wrong" : i < input.length ? "input" : "rollout";
    dot.append(svg("title", {}, `position ${i + 1}: ${v} (${kind})`));
    root.append(dot);
  });
  const legend = el("figcaption", {},
    el("span", { class: "key-input", text: "input" }), " ", el("span", { class: "key-rollout", text: "rollout" }));
  if (dense) legend.append(` (${values.length.toLocaleString("en-US")} values: one dot each, no lines)`);
  if (wrong !== null && wrong !== undefined) legend.append(" ", el("span", { class: "key-wrong", text: "judged wrong" }));
  figure.replaceChildren(root, legend);
}

// ---- start-up ---------------------------------------------------------------------------------

// Whether predictions need a key: the OpenAPI description says so (security on the predict operation).
async function learnKeyRequirement() {
  const doc = await call("openapi.json");
  const op = doc.ok && doc.body && doc.body.paths && doc.body.paths["/tasks/{name}/predict"];
  state.keyRequired = Boolean(op && op.post && op.post.security && op.post.security.length);
  if (state.keyRequired) {
    $("key-note").textContent = "This service needs an API key for predictions: paste it here "
      + "(sent as Authorization: Bearer, kept in this tab only), then press Enter or Predict.";
    $("key-note").classList.add("needed");
    $("api-key").setAttribute("aria-required", "true");
    $("api-key").placeholder = "required";
  }
}

function wireControls() {
  const key = $("api-key");
  key.addEventListener("input", () => {
    if (key.value) sessionStorage.setItem(KEY_STORAGE, key.value);
    else sessionStorage.removeItem(KEY_STORAGE);
  });
  key.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    run(state.lastRollout && !$("rollout-controls").hidden); // the key's Enter retries what was asked last
  });
  $("steps").addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault(); // Enter in Steps rolls out; the form's default button would Predict
    run(true);
  });
  $("sequence").addEventListener("input", () => {
    if (state.current) state.drafts.set(state.current.name, $("sequence").value);
  });
  $("top-k").addEventListener("input", () => {
    if (state.current) state.topK.set(state.current.name, $("top-k").value);
  });
  $("top-k").addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    run(false);
  });
  $("reset").addEventListener("click", () => {
    const task = state.current;
    const detail = task && state.details.get(task.name);
    if (!detail) return;
    state.drafts.delete(task.name);
    $("sequence").value = detail.example.request.body.inputs[0].join(", ");
    clearProblems();
    $("result").replaceChildren();
    $("sequence").focus();
  });
  $("predict-form").addEventListener("submit", (event) => { event.preventDefault(); run(false); });
  $("rollout").addEventListener("click", () => run(true));
  let resize = null;
  window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(drawChart, 100); });
}

async function start() {
  $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  const status = $("load-status");
  const [answer] = await Promise.all([call("tasks"), learnKeyRequirement()]);
  if (!answer.ok) {
    const retry = el("button", { type: "button", class: "secondary", text: "Try again" });
    retry.addEventListener("click", () => window.location.reload());
    const box = el("div", { class: "problem", role: "alert" },
      el("p", { class: "problem-title", text: problemTitle(answer, null) }));
    if (answer.body && answer.body.detail) box.append(el("p", { class: "problem-detail", text: answer.body.detail }));
    status.replaceChildren(box, retry);
    return;
  }
  const tasks = answer.body.tasks;
  const select = $("task");
  for (const task of tasks) {
    state.tasks.set(task.name, task);
    select.append(el("option", { value: task.name, disabled: !task.available,
                                 text: task.available ? task.name : `${task.name} (unavailable)` }));
    $("task-list").append(card(task));
  }
  const first = tasks.find((t) => t.available);
  if (!first) {
    status.textContent = tasks.length ? "No task can be served right now." : "The service has no models yet.";
    return;
  }
  status.textContent = `${tasks.length} task${tasks.length === 1 ? "" : "s"} served.`;
  select.addEventListener("change", () => selectTask(select.value));
  wireControls();
  $("predict-form").hidden = false;
  // A shared link (?task=ramp&input=1,5,2&steps=5&top_k=3) opens on that task and input, and runs it.
  const params = new URLSearchParams(location.search);
  const linked = state.tasks.get(params.get("task"));
  const chosen = linked && linked.available ? linked : first;
  select.value = chosen.name;
  await selectTask(chosen.name);
  await Promise.all(tasks.filter((t) => t.available).map((t) => loadDetail(t.name)));
  if (linked && params.has("input")) {
    $("sequence").value = params.get("input").split(",").join(", ");
    state.drafts.set(chosen.name, $("sequence").value);
    if (params.has("steps")) $("steps").value = params.get("steps");
    if (params.has("top_k")) {
      $("top-k").value = params.get("top_k");
      state.topK.set(chosen.name, $("top-k").value);
    }
    await run(params.has("steps") && chosen.rollout);
  }
  document.body.dataset.ready = "true"; // lets the browser test wait for start-up
}

document.addEventListener("DOMContentLoaded", start);
