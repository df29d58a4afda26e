// Status page of Free AI Selector: reads GET /api/v1/models/stats and
// GET /api/v1/models/timeline every few seconds and draws them; no library, no build step.
// Everything shown comes from those two public, read-only methods (no prompt text, no user ids);
// text is always set with textContent, never parsed as HTML. Where the API requires client keys
// the page asks for one (or the admin token) and keeps it in this tab's sessionStorage only.
"use strict";

const params = new URLSearchParams(location.search);
// Seconds between refreshes; `?refresh=N` (1..300) changes it.
const REFRESH_SECONDS = Math.min(300, Math.max(1, Number(params.get("refresh")) || 10));
const HOURS = 24;
const CALL_TIMEOUT_MS = 8000;
const SVG = "http://www.w3.org/2000/svg";

const STATES = {
  MODEL_STATE_READY: ["ready", "ready"],
  MODEL_STATE_COOLING_DOWN: ["cooling down", "cooling"],
  MODEL_STATE_CIRCUIT_OPEN: ["circuit open", "open"],
  MODEL_STATE_CIRCUIT_HALF_OPEN: ["half-open", "half"],
  MODEL_STATE_NO_CREDENTIALS: ["no key", "off"],
  MODEL_STATE_OUT_OF_BUDGET: ["out of budget", "budget"],
  MODEL_STATE_INACTIVE: ["inactive", "off"],
  MODEL_STATE_UNLISTED: ["unlisted", "unlisted"],
};

const $ = (id) => document.getElementById(id);
const KEY_ITEM = "fais-status-key";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// int64 fields arrive as strings in proto JSON.
const num = (value) => Number(value || 0);

function seconds(value) {
  const s = num(value);
  if (s <= 0) return "–";
  return s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`;
}

function untilText(availableAt, now) {
  if (!availableAt) return "";
  const left = Math.round((Date.parse(availableAt) - now) / 1000);
  if (!(left > 0)) return "available now";
  if (left < 90) return `available in ${left} s`;
  if (left < 5400) return `available in ${Math.round(left / 60)} min`;
  return `available in ${(left / 3600).toFixed(1)} h`;
}

async function call(path, init = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), CALL_TIMEOUT_MS);
  try {
    const key = sessionStorage.getItem(KEY_ITEM);
    const headers = key ? { ...init.headers, authorization: `Bearer ${key}` } : init.headers;
    const response = await fetch(path, { ...init, headers, signal: controller.signal, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { status: response.status, body };
  } finally {
    clearTimeout(timer);
  }
}

// ---- budget bars ------------------------------------------------------------------------

function budgetBar(label, used, limit) {
  const row = el("div", "budget");
  row.dataset.budget = label;
  const head = el("div", "label");
  head.append(el("span", "", label));
  const usedText = used.toLocaleString();
  head.append(el("span", "muted", limit > 0 ? `${usedText} / ${limit.toLocaleString()}` : `${usedText} (no limit declared)`));
  row.append(head);
  if (limit > 0) {
    const track = el("div", "bar");
    const fill = el("div");
    const share = Math.min(1, used / limit);
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    if (share >= 1) fill.className = "full";
    else if (share >= 0.8) fill.className = "warn";
    track.append(fill);
    row.append(track);
  }
  return row;
}

function budgets(model) {
  const box = el("div", "budgets");
  const own = model.budget || {};
  box.append(
    budgetBar("requests today", num(own.requests_today), num(own.requests_per_day)),
    budgetBar("requests this minute", num(own.requests_last_minute), num(own.requests_per_minute)),
  );
  if (num(own.tokens_per_day) > 0 || num(own.tokens_today) > 0) {
    box.append(budgetBar("tokens today", num(own.tokens_today), num(own.tokens_per_day)));
  }
  if (num(own.tokens_per_minute) > 0) {
    box.append(budgetBar("tokens this minute", num(own.tokens_last_minute), num(own.tokens_per_minute)));
  }
  const account = model.account_budget || {};
  if (num(account.requests_per_day) > 0) {
    box.append(budgetBar(`account requests today (${model.account})`, num(account.requests_today), num(account.requests_per_day)));
  }
  if (num(account.requests_per_minute) > 0) {
    box.append(budgetBar(`account requests this minute (${model.account})`, num(account.requests_last_minute), num(account.requests_per_minute)));
  }
  return box;
}

// ---- chart ------------------------------------------------------------------------------

const W = 240;
const H = 60;

function chart(timeline) {
  const hours = timeline ? timeline.hours : [];
  const box = el("div");
  const picture = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  const counts = hours.map((h) => ({
    ok: num(h.successes),
    fail: num(h.failures),
    limited: num(h.rate_limited),
    latency: num(h.median_response_time),
    start: h.start_time,
  }));
  const most = Math.max(1, ...counts.map((c) => c.ok + c.fail + c.limited));
  const slowest = Math.max(0, ...counts.map((c) => c.latency));
  const slot = W / Math.max(1, counts.length);
  let failures = 0;
  let successes = 0;
  const points = [];
  counts.forEach((c, index) => {
    const x = index * slot;
    let top = H;
    for (const kind of ["ok", "limited", "fail"]) {
      if (!c[kind]) continue;
      const height = (c[kind] / most) * (H - 4);
      top -= height;
      const bar = svg("rect", { class: kind, x: x + 1, y: top, width: Math.max(1, slot - 2), height });
      bar.append(svg("title", {}));
      bar.lastChild.textContent = `${new Date(c.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: ${c[kind]} ${kind === "ok" ? "successes" : kind === "fail" ? "failures" : "rate limited"}`;
      picture.append(bar);
    }
    failures += c.fail;
    successes += c.ok;
    if (c.latency > 0 && slowest > 0) points.push([x + slot / 2, H - 2 - (c.latency / slowest) * (H - 8)]);
  });
  if (points.length > 1) {
    picture.append(svg("polyline", { class: "latency", points: points.map((p) => p.join(",")).join(" ") }));
  }
  for (const [x, y] of points) picture.append(svg("circle", { class: "dot", cx: x, cy: y, r: 1.6 }));
  picture.append(svg("line", { class: "axis", x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }));
  picture.dataset.failures = String(failures);
  picture.dataset.successes = String(successes);
  picture.setAttribute("aria-label", `last ${counts.length} h: ${successes} successes, ${failures} failures`);
  const note = el("div", "chart-note muted");
  note.append(el("span", "", `${counts.length} h ago`));
  note.append(el("span", "", `peak ${most}/h · slowest median ${slowest > 0 ? seconds(slowest) : "–"}`));
  note.append(el("span", "", "now"));
  box.append(picture, note);
  return box;
}

// ---- models -----------------------------------------------------------------------------

function figure(label, value) {
  const cell = el("div");
  cell.append(el("span", "", label), document.createTextNode(value));
  return cell;
}

function modelCard(model, timeline, now) {
  const [label, tone] = STATES[model.state] || [model.state, "off"];
  const card = el("article", "model");
  card.dataset.model = model.name;
  card.dataset.state = model.state;
  const head = el("div", "head");
  const title = el("div");
  title.append(el("h3", "", model.name), el("span", "muted", model.provider));
  const state = el("span", `state ${tone}`, label);
  state.dataset.field = "state";
  state.title = model.state;
  head.append(title, state);
  card.append(head);
  const reason = [model.state_reason, untilText(model.available_at, now)].filter(Boolean).join(" — ");
  const why = el("p", "reason muted", reason);
  why.dataset.field = "reason";
  if (!reason) why.hidden = true;
  card.append(why);
  const figures = el("div", "figures");
  figures.append(
    figure("score", num(model.reliability_score).toFixed(3)),
    figure("rank", num(model.rank) > 0 ? `#${model.rank}` : "–"),
    figure("success", num(model.successful_requests) + num(model.failed_requests) > 0 ? `${(num(model.success_rate) * 100).toFixed(0)} %` : "–"),
    figure("median", seconds(model.median_response_time)),
  );
  card.append(figures, budgets(model), chart(timeline));
  return card;
}

function render(stats, timeline) {
  const now = Date.now();
  const lines = new Map((timeline ? timeline.models : []).map((m) => [m.name, m]));
  const cards = stats.models.map((model) => modelCard(model, lines.get(model.name), now));
  $("models").replaceChildren(...cards);
  const ready = stats.models.filter((m) => m.state === "MODEL_STATE_READY").length;
  $("total-ready").textContent = `${ready} / ${stats.models.length}`;
  if (timeline) {
    const last = timeline.last_hour || {};
    $("total-prompts").textContent = num(last.prompts).toLocaleString();
    $("total-answered").textContent = num(last.answered).toLocaleString();
    $("total-failovers").textContent = num(last.failovers).toLocaleString();
  }
}

// ---- refresh loop -----------------------------------------------------------------------

let lastGood = 0;
let timer = 0;

function showDown(problem) {
  const banner = $("down");
  const since = lastGood ? ` Last data from ${new Date(lastGood).toLocaleTimeString()}.` : "";
  banner.textContent = `The API is not answering (${problem}). Retrying every ${REFRESH_SECONDS} s.${since}`;
  banner.hidden = false;
  for (const card of document.querySelectorAll(".model")) card.classList.add("stale");
}

async function refresh() {
  clearTimeout(timer);
  try {
    const [stats, timeline] = await Promise.all([
      call("/api/v1/models/stats"),
      call(`/api/v1/models/timeline?hours=${HOURS}`),
    ]);
    if (stats.status === 401 || stats.status === 403) {
      askForKey(stats);
      return;
    }
    if (stats.status !== 200 || !stats.body) {
      const message = stats.body && stats.body.message ? `: ${stats.body.message}` : "";
      showDown(`HTTP ${stats.status}${message}`);
      return;
    }
    $("key-form").hidden = true;
    render(stats.body, timeline.status === 200 ? timeline.body : null);
    lastGood = Date.now();
    $("down").hidden = true;
    const charts = timeline.status === 200 ? "" : ` (charts unavailable: HTTP ${timeline.status})`;
    $("updated").textContent = `updated ${new Date(lastGood).toLocaleTimeString()}, every ${REFRESH_SECONDS} s${charts}`;
  } catch (error) {
    showDown(error && error.name === "AbortError" ? "no reply within 8 s" : "cannot connect");
  } finally {
    timer = setTimeout(refresh, REFRESH_SECONDS * 1000);
  }
}

// ---- client key -------------------------------------------------------------------------

// The API answered 401 (no key) or 403 (a wrong or revoked key): not "down", so say what it wants.
function askForKey(reply) {
  $("down").hidden = true;
  const message = reply.body && reply.body.message ? reply.body.message : `HTTP ${reply.status}`;
  $("key-status").textContent = `${reply.status}: ${message}`;
  $("key-form").hidden = false;
  $("updated").textContent = "this API requires a client key";
}

function useKey(event) {
  event.preventDefault();
  const key = $("client-key").value.trim();
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
  $("client-key").value = "";
  refresh();
}

// ---- admin probe ------------------------------------------------------------------------

function probeRow(result) {
  const row = el("tr");
  row.dataset.model = result.model;
  const status = (result.status || "").replace("TEST_STATUS_", "").toLowerCase();
  row.append(
    el("td", "", result.model),
    el("td", "", status),
    el("td", "", seconds(result.response_time_seconds)),
    el("td", "", result.error || ""),
  );
  return row;
}

async function probe(event) {
  event.preventDefault();
  const token = $("probe-token").value.trim();
  const status = $("probe-status");
  const button = $("probe");
  status.className = "muted";
  if (!token) {
    status.textContent = "Enter the admin token first.";
    return;
  }
  button.disabled = true;
  status.textContent = "Probing every model…";
  $("probe-results").hidden = true;
  try {
    const reply = await fetch("/api/v1/providers/test", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: "{}",
      cache: "no-store",
    });
    const body = await reply.json().catch(() => null);
    if (reply.status !== 200 || !body) {
      const message = body && body.message ? body.message : reply.statusText;
      status.textContent = `${reply.status}: ${message}`;
      status.className = "error";
      return;
    }
    status.textContent = `${body.successful} answered, ${body.failed} failed, ${body.skipped} skipped of ${body.total_providers}`;
    $("probe-results").tBodies[0].replaceChildren(...body.results.map(probeRow));
    $("probe-results").hidden = false;
    refresh();
  } catch {
    status.textContent = "The API is not answering; try again.";
    status.className = "error";
  } finally {
    button.disabled = false;
  }
}

$("probe-form").addEventListener("submit", probe);
$("key-form").addEventListener("submit", useKey);
refresh();
