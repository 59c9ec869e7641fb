// toyseq playground: lists the tasks (GET /tasks), and sends what the user types to
// POST /tasks/<name>/predict exactly as typed, so that every validation message comes from the API.
// URLs are relative, so the page also works behind a proxy that mounts the service under a prefix.
"use strict";

const KEY_STORAGE = "toyseq.apiKey"; // sessionStorage only: the key leaves with the tab
const TOP_K = 5;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = { tasks: new Map(), details: new Map(), current: null };

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

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
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
    return { ok: false, status: 0, body: null, network: String(err) };
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch (err) {
    parsed = null; // not JSON: shown by status line only
  }
  return { ok: response.ok, status: response.status, statusText: response.statusText, body: parsed };
}

// What the user typed, as the request's one input sequence. Numbers become numbers; anything else is
// sent as typed (a string), so the API's own message names the bad place. "[...]" is read as JSON.
function parseSequence(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    try {
      return JSON.parse(trimmed);
    } catch (err) {
      // not JSON after all: fall through and split it like any other text
    }
  }
  const tokens = trimmed.split(/[\s,;[\]]+/).filter((t) => t !== "");
  return tokens.map((t) => (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t) && Number.isFinite(Number(t)) ? Number(t) : t));
}

function parseSteps(text) {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : text;
}

function show(value) {
  return Array.isArray(value) ? "[" + value.map(show).join(", ") + "]" : JSON.stringify(value);
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

function outputText(task) {
  const kinds = { echo: "a list: one value per input position", value: "one value",
                  next: "the next value" };
  let text = kinds[task.output.kind] || task.output.kind;
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

function gatesTable(task, name) {
  const table = el("table", { class: "gates" },
    el("caption", { text: `Evaluation of ${name}` }),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col", text: "category" }), el("th", { scope: "col", text: "metric" }),
      el("th", { scope: "col", text: "needs" }),
      el("th", { scope: "col", text: "got" }), el("th", { scope: "col", text: "n" }),
      el("th", { scope: "col", text: "passed" }))));
  const body = el("tbody");
  for (const gate of task.evaluation || []) {
    body.append(el("tr", {},
      el("th", { scope: "row", text: gate.category || "" }),
      el("td", { text: gate.steps ? `${gate.metric}, ${gate.steps}-step rollout` : gate.metric }),
      el("td", { text: `${gate.op} ${figure(gate.threshold)}` }),
      el("td", { text: figure(gate.value), title: String(gate.value) }),
      el("td", { text: String(gate.n) }),
      el("td", { class: gate.passed ? "pass" : "fail", text: gate.passed ? "yes" : "no" })));
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
  const figure = el("figure", { class: "curve" }, curve, el("figcaption", { text: "Training curve" }));
  curve.addEventListener("error", () => figure.replaceWith(el("p", { class: "hint", text: "No training curve." })));
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
      el("dt", { text: "Output" }), el("dd", { text: outputText(task) })),
    gatesTable(task, task.name),
    figure,
    tryIt);
  return article;
}

// ---- the try-it form --------------------------------------------------------------------------

async function selectTask(name) {
  const task = state.tasks.get(name);
  state.current = task;
  $("task-description").textContent = task.description;
  $("sequence-hint").textContent = "Values separated by commas or spaces: " + contractText(task.input) + ".";
  const rollout = $("rollout-controls");
  rollout.hidden = !task.rollout;
  if (task.rollout) $("steps").max = task.max_steps;
  $("result").replaceChildren();
  if (!state.details.has(name)) {
    const answer = await call(taskUrl(name));
    if (answer.ok) state.details.set(name, answer.body);
  }
  const detail = state.details.get(name);
  if (detail && state.current === task) {
    $("sequence").value = show(detail.example.request.body.inputs[0]).slice(1, -1);
    $("sequence").dataset.task = name; // which task's example the field holds
  }
}

async function run(withSteps) {
  const task = state.current;
  if (!task) return;
  const typed = $("sequence").value;
  const body = { inputs: [parseSequence(typed)] };
  if (withSteps) body.steps = parseSteps($("steps").value);
  else if (task.top_k) body.top_k = Math.min(TOP_K, task.max_top_k);
  const result = $("result");
  result.setAttribute("aria-busy", "true");
  const answer = await call(taskUrl(task.name, "/predict"), body);
  result.removeAttribute("aria-busy");
  if (state.current !== task) return; // the user switched task meanwhile
  if (!answer.ok) {
    result.replaceChildren(problemView(answer));
    return;
  }
  const output = answer.body.outputs[0];
  const parts = [el("dl", { class: "answer" },
    el("dt", { text: "Input" }), el("dd", { id: "answer-input", text: show(body.inputs[0]) }),
    el("dt", { text: withSteps ? `Next ${output.length} values` : "Answer" }),
    el("dd", { id: "answer-value", "data-json": JSON.stringify(output), text: show(output) }))];
  if (withSteps) parts.push(chart(body.inputs[0], output, task.name));
  if (answer.body.top_k) parts.push(topKBars(answer.body.top_k[0]));
  parts.push(el("details", { class: "raw" }, el("summary", { text: "Response JSON" }),
    el("pre", { text: JSON.stringify(answer.body, null, 2) })));
  result.replaceChildren(...parts);
}

// An error exactly as the API words it: its problem+json title, detail and located errors.
function problemView(answer) {
  const box = el("div", { class: "problem", role: "alert" });
  const p = answer.body;
  if (answer.status === 0) {
    box.append(el("p", { class: "problem-title", text: "The service could not be reached" }),
      el("p", { class: "problem-detail", text: answer.network }));
    return box;
  }
  const title = p && p.title ? p.title : answer.statusText;
  box.append(el("p", { class: "problem-title", text: `${answer.status} ${title}` }));
  if (p && p.detail !== undefined) box.append(el("p", { class: "problem-detail", text: p.detail }));
  if (p && Array.isArray(p.errors)) {
    const list = el("ul", { class: "problem-errors" });
    for (const e of p.errors) {
      list.append(el("li", {}, el("code", { class: "pointer", text: e.pointer || "(body)" }), " ",
        el("span", { class: "message", text: e.message })));
    }
    box.append(list);
  }
  return box;
}

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

// The input and its rollout as one line: the rollout's line starts at the last input value, so it
// visibly continues the sequence.
function chart(input, rolled, name) {
  const values = [...input, ...rolled];
  const W = 640, H = 240, left = 56, right = 16, top = 16, bottom = 32;
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = (i) => left + (values.length === 1 ? 0 : (i * (W - left - right)) / (values.length - 1));
  const y = (v) => top + ((hi - v) * (H - top - bottom)) / (hi - lo);
  const points = (from, to) => values.slice(from, to).map((v, j) => `${x(from + j).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const label = `Line chart of ${name}: ${input.length} input values followed by ${rolled.length} rolled-out values`;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": label });
  const title = svg("title");
  title.textContent = label;
  root.append(title);
  root.append(svg("line", { class: "axis", x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }));
  root.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }));
  for (const v of [hi, (hi + lo) / 2, lo]) {
    if (v !== lo) root.append(svg("line", { class: "grid", x1: left, y1: y(v), x2: W - right, y2: y(v) }));
    const t = svg("text", { class: "tick", x: left - 6, y: y(v) + 4, "text-anchor": "end" });
    t.textContent = String(+v.toPrecision(3));
    root.append(t);
  }
  const caption = svg("text", { class: "tick", x: (left + W - right) / 2, y: H - 8, "text-anchor": "middle" });
  caption.textContent = "position";
  root.append(caption);
  const split = x(input.length - 1);
  root.append(svg("line", { class: "split", x1: split, y1: top, x2: split, y2: H - bottom }));
  root.append(svg("polyline", { class: "series-input", points: points(0, input.length) }));
  root.append(svg("polyline", { class: "series-rollout", points: points(input.length - 1, values.length) }));
  values.forEach((v, i) => {
    const dot = svg("circle", { class: i < input.length ? "dot-input" : "dot-rollout", cx: x(i).toFixed(1),
                                cy: y(v).toFixed(1), r: values.length > 120 ? 1.5 : 3 });
    const tip = svg("title");
    tip.textContent = `position ${i}: ${v}${i < input.length ? " (input)" : " (rollout)"}`;
    dot.append(tip);
    root.append(dot);
  });
  const legend = el("figcaption", {},
    el("span", { class: "key-input", text: "input" }), " ", el("span", { class: "key-rollout", text: "rollout" }));
  return el("figure", { class: "chart-figure" }, root, legend);
}

// ---- start-up ---------------------------------------------------------------------------------

async function start() {
  const key = $("api-key");
  key.value = sessionStorage.getItem(KEY_STORAGE) || "";
  key.addEventListener("input", () => {
    if (key.value) sessionStorage.setItem(KEY_STORAGE, key.value);
    else sessionStorage.removeItem(KEY_STORAGE);
  });
  const status = $("load-status");
  const answer = await call("tasks");
  if (!answer.ok) {
    status.replaceChildren(problemView(answer));
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
  $("predict-form").addEventListener("submit", (event) => { event.preventDefault(); run(false); });
  $("rollout").addEventListener("click", () => run(true));
  $("predict-form").hidden = false;
  await selectTask(first.name);
  document.body.dataset.ready = "true"; // lets the browser test wait for start-up
}

document.addEventListener("DOMContentLoaded", start);
