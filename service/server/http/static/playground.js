// toyseq playground: lists the tasks (GET /tasks) and sends what the user types to
// POST /tasks/<name>/predict. Input that could be read two ways (a decimal comma, an empty item) is
// refused here, in words; everything else goes to the API, whose located errors are shown at the value
// they concern. URLs are relative, so the page also works behind a proxy that mounts the service under a prefix.
"use strict";

const KEY_STORAGE = "toyseq.apiKey"; // sessionStorage only: the key leaves with the tab
const TOP_K = 5;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  tasks: new Map(), details: new Map(), drafts: new Map(), current: null,
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
  // "0,5 1,0" is either four values or two decimals written with commas: refuse rather than guess.
  const comma = body.match(/(?:^|[\s])([-+]?\d+,\d+)(?=\s|$)/);
  if (comma && /[^,\s]\s+[^,\s]/.test(body)) {
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

// Steps as a whole number 1..max, or a sentence saying what is wrong with it.
function parseSteps(text, max) {
  const typed = text.trim();
  if (typed === "") return { problem: `Steps is empty: type a whole number from 1 to ${max}.` };
  if (!/^\d+$/.test(typed) || Number(typed) < 1 || Number(typed) > max) {
    return { problem: `Steps must be a whole number from 1 to ${max}; “${typed}” is not.` };
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

// A list of values as chips that wrap between values, never inside one; the full value on hover.
function valueList(values, decimals, marks = new Map(), id) {
  const list = el("ol", { class: "values", id });
  values.forEach((v, i) => {
    const shown = formatValue(v, decimals);
    const note = marks.get(i);
    const title = `value ${i + 1}: ${v}` + (note ? ` (${note})` : "");
    const item = el("li", { title, "data-full": String(v) }, note ? el("mark", { text: shown }) : shown);
    if (note) item.classList.add("marked");
    list.append(item);
  });
  return list;
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
      el("td", { role: "cell", "data-label": "needs", text: `${ops[gate.op] || gate.op} ${figure(gate.threshold)}` }),
      el("td", { role: "cell", "data-label": "got", text: figure(gate.value), title: String(gate.value) }),
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
  const curve = el("img", { src: taskUrl(task.name, "/training.png"), width: 600, height: 350, loading: "lazy",
                            alt: `Training curve of ${task.name}: training and validation loss per step` });
  const picture = el("figure", { class: "curve" }, curve, el("figcaption", { text: "Training curve" }));
  curve.addEventListener("error", () => picture.replaceWith(el("p", { class: "hint", text: "No training curve." })));
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
      el("dt", { text: "Output" }), el("dd", { class: "output-kind", text: outputText(task) })),
    gatesTable(task, task.name),
    picture,
    tryIt);
  return article;
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
  for (const id of ["sequence", "steps", "api-key"]) $(id).removeAttribute("aria-invalid");
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
function fieldProblem(field, messages, strip) {
  const box = el("div", { class: "problem" });
  if (strip) box.append(strip);
  const list = el("ul", { class: "problem-errors" }, ...messages.map((m) => el("li", { class: "message", text: m })));
  box.append(list);
  $(field).setAttribute("aria-invalid", "true");
  const holder = { sequence: "sequence-problem", steps: "steps-problem", "api-key": "key-problem" }[field];
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
  if (typed.problems || (parsedSteps && parsedSteps.problem)) {
    $("result").replaceChildren();
    if (typed.problems) {
      const marks = new Map(typed.problems.filter((p) => p.index !== null).map((p) => [p.index, p.note]));
      const strip = marks.size ? valueList(typed.items.map((s) => (s === "" ? "␣" : s)), null, marks) : null;
      fieldProblem("sequence", typed.problems.map((p) => p.message), strip);
    }
    if (parsedSteps && parsedSteps.problem) fieldProblem("steps", [parsedSteps.problem]);
    return;
  }
  if (withSteps) steps = parsedSteps.steps;
  const input = typed.values;
  const body = { inputs: [input] };
  if (withSteps) body.steps = steps;
  else if (task.top_k) body.top_k = Math.min(TOP_K, task.max_top_k);
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
  showAnswer(answer.body, input, task, steps);
}

function showAnswer(reply, input, task, steps) {
  const result = $("result");
  const output = reply.outputs[0];
  const decimals = decimalsFor(task, input, steps);
  const wrong = reply.wrong_position ? reply.wrong_position[0] : null;
  const marks = new Map();
  if (wrong !== null && wrong !== undefined) marks.set(wrong, "judged wrong");
  const answer = Array.isArray(output) ? valueList(output, decimals, new Map(), "answer-value")
    : el("span", { id: "answer-value", title: String(output), text: formatValue(output, decimals) });
  answer.dataset.json = JSON.stringify(output);
  const parts = [el("dl", { class: "answer" },
    el("dt", { text: "Input" }), el("dd", {}, valueList(input, null, marks, "answer-input")),
    el("dt", { text: steps ? `Next ${output.length} values` : "Answer" }), el("dd", {}, answer))];
  if (marks.size) {
    parts.push(el("p", { id: "wrong-value", class: "wrong-note" },
      `The model judged value ${wrong + 1} (${input[wrong]}) wrong: it does not fit the progression, and the answer `
      + "continues the other values."));
  }
  if (decimals !== null) {
    parts.push(el("p", { class: "hint", text: `Shown to ${decimals} decimals, the precision this task's evaluation `
      + "vouches for; hover a value for the full number." }));
  }
  if (steps) parts.push(el("figure", { class: "chart-figure" }));
  if (reply.top_k) parts.push(topKBars(reply.top_k[0]));
  parts.push(el("details", { class: "raw" }, el("summary", { text: "Response JSON" }),
    el("pre", { text: JSON.stringify(reply, null, 2) })));
  result.replaceChildren(...parts);
  if (steps) {
    state.chart = { input, output, name: task.name, decimals, wrong };
    drawChart();
  }
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
      $("sequence-problem").firstChild?.append(el("p", { class: "hint", text: `(${p.errors_total} problems, the first ${errors.length} shown)` }));
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

function topKBars(choices) {
  const list = el("ol", { class: "topk" });
  for (const { value, p } of choices) {
    const percent = (p * 100).toFixed(1) + "%";
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
  root.append(svg("polyline", { class: "series-input", points: points(0, input.length) }));
  root.append(svg("polyline", { class: "series-rollout", points: points(input.length - 1, values.length) }));
  values.forEach((v, i) => {
    const isWrong = i === wrong;
    const dot = svg("circle", { class: isWrong ? "dot-wrong" : i < input.length ? "dot-input" : "dot-rollout",
                                cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: isWrong ? 5 : values.length > 120 ? 1.5 : 3 });
    const kind = isWrong ? "input, judged wrong" : i < input.length ? "input" : "rollout";
    dot.append(svg("title", {}, `position ${i + 1}: ${v} (${kind})`));
    root.append(dot);
  });
  const legend = el("figcaption", {},
    el("span", { class: "key-input", text: "input" }), " ", el("span", { class: "key-rollout", text: "rollout" }));
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
  select.value = first.name;
  select.addEventListener("change", () => selectTask(select.value));
  wireControls();
  $("predict-form").hidden = false;
  await selectTask(first.name);
  await Promise.all(tasks.filter((t) => t.available).map((t) => loadDetail(t.name)));
  document.body.dataset.ready = "true"; // lets the browser test wait for start-up
}

document.addEventListener("DOMContentLoaded", start);
