/* 8here emulator inspector.
 *
 * Everything here is read from, and done through, the emulator's control API (the calls in API
 * below); the page keeps no state of the emulator's own and decides nothing the API does not.
 * Plain browser JavaScript: no framework, no build step, no external resources.
 */
(() => {
  "use strict";

  // The control API's paths, relative to its root (the folder this page is served from).
  const API = Object.freeze({
    clock: "/clock",
    reset: "/reset",
    applications: "/applications",
    requests: "/requests",
    faults: "/faults",
    links: "/links",
    checks: "/checks",
    scenario: "/scenario",
    scenarios: "/scenarios",
  });
  const ROOT = location.pathname.replace(/\/ui\/?$/, "");
  const POLL_MS = 1000;
  const HIDDEN_POLL_MS = 5000;
  const MAX_ROWS = 1000;
  // 429 rows are annotated with their window from the response headers (one detail fetch a poll).
  const ANNOTATE_NEWEST = 200;
  const DETAIL_CONCURRENCY = 4;
  const TOKEN_KEY = "8here-emulator-control-token";
  const DAY_MS = 86400000;

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------ helpers

  /** An element with attributes and children; text is always set as text, never as HTML. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function escapeXml(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  /** `2026-03-14T09:26:53Z` → `09:26:53`. */
  function clockTime(iso) {
    return typeof iso === "string" && iso.length >= 19 ? iso.slice(11, 19) : "—";
  }

  function epochTime(epoch) {
    return new Date(epoch * 1000).toISOString().slice(11, 19);
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  function formatLatency(ms) {
    if (typeof ms !== "number") return "—";
    return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
  }

  /** The delay the emulator added (latency profile and faults), when it added one. */
  function addedDelay(entry) {
    return typeof entry.latencyMs === "number" && entry.latencyMs > 0 ? entry.latencyMs : null;
  }

  function headerValue(headers, name) {
    const found = (headers || []).find(([key]) => key.toLowerCase() === name);
    return found ? found[1] : null;
  }

  let toastTimer = null;
  function toast(message, isError = false) {
    const box = $("toast");
    box.textContent = message;
    box.className = isError ? "toast error" : "toast";
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, isError ? 6000 : 2500);
  }

  // --------------------------------------------------------------------------- the API

  class ControlError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** One control API call: JSON in and out (or text out, with `text`: a YAML export); an error
   * envelope becomes a ControlError. */
  async function call(method, name, { suffix = "", query = null, body, text = false } = {}) {
    const url = new URL(ROOT + API[name] + suffix, location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
    }
    const headers = { Accept: text ? "application/yaml" : "application/json" };
    // Every state-changing control call must be declared JSON, body or not (the emulator refuses
    // any other, so that no page elsewhere can send one without a preflight).
    if (body !== undefined || method !== "GET") headers["Content-Type"] = "application/json";
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(url, {
      method,
      headers,
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    if (text && response.ok) return response.text();
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      if (response.status === 401 && error.code === "control_unauthorized") needToken();
      throw new ControlError(error.message || `HTTP ${response.status}`, response.status, error.code);
    }
    return data;
  }

  function report(err) {
    if (err instanceof ControlError && err.code === "control_unauthorized") return;
    toast(err.message || String(err), true);
  }

  // ------------------------------------------------------------------- token and polling

  let needsToken = false;
  let paused = false;

  function needToken() {
    needsToken = true;
    $("auth").hidden = false;
    setConnection("down", "Token needed");
  }

  function setConnection(kind, text) {
    $("connection").className = `connection ${kind}`;
    $("connection-text").textContent = text;
  }

  async function tick() {
    if (!needsToken) {
      try {
        await Promise.all([
          refreshClock(),
          refreshState(),
          paused ? null : pollRequests(),
          paused ? null : refreshChecks(),
        ]);
        if (!needsToken) setConnection(paused ? "paused" : "live", paused ? "Paused" : "Live");
      } catch (err) {
        if (!needsToken) setConnection("down", err instanceof ControlError ? "Error" : "Offline");
      }
    }
    setTimeout(tick, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  // ------------------------------------------------------------------------------- clock

  let clockEpoch = null;

  async function refreshClock() {
    const clock = await call("GET", "clock");
    showClock(clock);
  }

  function showClock(clock) {
    clockEpoch = clock.epoch;
    $("clock-now").textContent = clock.now.replace("T", " ").replace("Z", " UTC");
    $("clock-now").dateTime = clock.now;
    const stateText = $("clock-state");
    stateText.textContent = clock.frozen ? "frozen" : "running";
    stateText.className = clock.frozen ? "clock-state frozen" : "clock-state";
    const freeze = $("freeze");
    freeze.textContent = clock.frozen ? "Resume" : "Freeze";
    freeze.dataset.frozen = clock.frozen ? "1" : "";
  }

  async function setClock(body) {
    try {
      showClock(await call("POST", "clock", { body }));
      await refreshState();
    } catch (err) {
      report(err);
    }
  }

  // ----------------------------------------------------------------------------- journal

  const journal = {
    entries: new Map(), // sequence → entry (with .window when a 429 was annotated)
    anchor: null, // the newest entry seen: {sequence, requestId}
  };

  // Polls run one after another (a reset's poll may overlap the timer's), so no row comes twice.
  let pollQueue = Promise.resolve();
  function pollRequests() {
    const run = pollQueue.then(pollOnce);
    pollQueue = run.catch(() => null);
    return run;
  }

  /** New journal entries since the anchor. When the anchor is gone (the journal was cleared or
   * the emulator reset), start again from the beginning. */
  async function pollOnce() {
    let fresh;
    if (journal.anchor) {
      const { requests } = await call("GET", "requests", {
        query: { after: journal.anchor.sequence - 1 },
      });
      const first = requests[0];
      if (first && first.sequence === journal.anchor.sequence
          && first.requestId === journal.anchor.requestId) {
        fresh = requests.slice(1);
      } else {
        clearRows();
        fresh = (await call("GET", "requests", { query: { after: 0 } })).requests;
      }
    } else {
      fresh = (await call("GET", "requests", { query: { after: 0 } })).requests;
    }
    if (!fresh.length) return;
    await annotateRateLimited(fresh);
    addRows(fresh);
    const newest = fresh[fresh.length - 1];
    journal.anchor = { sequence: newest.sequence, requestId: newest.requestId };
  }

  /** 429 entries get their rate window (X-RateLimit-* of the response) from the detail view. */
  async function annotateRateLimited(entries) {
    const limited = entries.slice(-ANNOTATE_NEWEST).filter((e) => e.status === 429);
    if (!limited.length) return;
    const { requests } = await call("GET", "requests", {
      query: { after: limited[0].sequence - 1, detail: 1 },
    });
    const wanted = new Map(limited.map((e) => [e.sequence, e]));
    for (const detail of requests) {
      const entry = wanted.get(detail.sequence);
      if (!entry || detail.requestId !== entry.requestId) continue;
      const headers = detail.response.headers;
      const limit = Number(headerValue(headers, "x-ratelimit-limit"));
      const remaining = Number(headerValue(headers, "x-ratelimit-remaining"));
      const reset = Number(headerValue(headers, "x-ratelimit-reset"));
      if (Number.isFinite(limit) && limit > 0) {
        entry.window = { used: limit - remaining, limit, reset };
      }
    }
  }

  function clearRows() {
    journal.entries.clear();
    journal.anchor = null;
    $("requests-rows").replaceChildren();
    updateRequestCount();
  }

  function statusClass(status) {
    if (status === 429) return "s429";
    if (status === 0) return "s0";
    return `s${Math.floor(status / 100)}`;
  }

  function rateNote(entry) {
    const parts = ["Rate limited"];
    if (entry.retryAfter !== null && entry.retryAfter !== undefined) {
      parts.push(`Retry-After ${entry.retryAfter} s`);
    }
    if (entry.window) {
      const w = entry.window;
      parts.push(`window ${w.used}/${w.limit} per 60 s, resets ${epochTime(w.reset)}`);
    }
    return parts.join(" · ");
  }

  /** Under `proxy`: what the checks said of the exchange, as a badge (none when all was ok). */
  function checkBadge(entry) {
    const check = entry.check;
    if (!check || check.verdict === "ok") return null;
    if (check.verdict === "differences") {
      return h("span", { class: "check-badge differences", title: `${plural(check.differences, "difference")} from the target: click for the check` },
        `Δ ${check.differences}`);
    }
    const said = check.verdict === "proxy-answer" ? "proxy's own answer" : "not checked";
    return h("span", { class: `check-badge ${check.verdict}` }, said);
  }

  /** What an injected fault did, in words: "503, Retry-After 20 s, +500 ms, network reset". */
  function faultEffect(f) {
    const parts = [];
    if (f.status) parts.push(String(f.status));
    if (f.retryAfter) parts.push(`Retry-After ${f.retryAfter} s`);
    if (f.delayMs) parts.push(`+${f.delayMs} ms`);
    if (f.network) parts.push(f.network === "dribble" ? `dribble over ${f.dribbleMs} ms` : `network ${f.network}`);
    if (f.every) parts.push(`every ${f.every} requests`);
    if (f.probability) parts.push(`probability ${f.probability}`);
    return parts.join(", ");
  }

  function faultNote(fault) {
    const via = { header: "X-Emulator-Fault", scenario: "the scenario's fault" }[fault.source] || "fault";
    return `Injected (${via}): ${faultEffect(fault)}`;
  }

  /** The status column: the code, or for a fault that sent no response what it did instead. */
  function statusText(entry) {
    return entry.status === 0 && entry.fault ? entry.fault.network : String(entry.status);
  }

  function requestRow(entry) {
    const query = entry.query ? h("span", { class: "query" }, `?${entry.query}`) : null;
    const pathCell = h("td", { class: "path", title: entry.path + (entry.query ? `?${entry.query}` : "") },
      checkBadge(entry), entry.path, query,
      entry.status === 429 ? h("span", { class: "rate-note" }, rateNote(entry)) : null,
      entry.fault ? h("span", { class: "fault-note" }, faultNote(entry.fault)) : null);
    const differs = entry.check && entry.check.verdict === "differences";
    return h("tr", {
      class: `fresh status-${entry.status}${differs ? " has-differences" : ""}`,
      tabindex: 0,
      dataset: { sequence: entry.sequence },
      title: `${entry.requestId} · click for headers and bodies`,
    },
    h("td", { class: "time", title: entry.time }, clockTime(entry.time)),
    h("td", { class: entry.clientId ? "app" : "app none" }, entry.clientId || "—"),
    h("td", {}, h("span", { class: `method ${entry.method}` }, entry.method)),
    pathCell,
    h("td", {}, h("span", { class: `status ${statusClass(entry.status)}` }, statusText(entry))),
    h("td", {
      class: "latency",
      title: addedDelay(entry) === null ? null
        : `${formatLatency(addedDelay(entry))} of it added by the latency profile and faults`,
    }, formatLatency(entry.durationMs),
    addedDelay(entry) === null ? null
      : h("span", { class: "added" }, `+${Math.round(addedDelay(entry))}`)));
  }

  function addRows(entries) {
    const body = $("requests-rows");
    const fragment = document.createDocumentFragment();
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i];
      journal.entries.set(entry.sequence, entry);
      const row = requestRow(entry);
      row.hidden = !visible(entry);
      fragment.append(row);
    }
    body.prepend(fragment);
    while (body.rows.length > MAX_ROWS) {
      const last = body.rows[body.rows.length - 1];
      journal.entries.delete(Number(last.dataset.sequence));
      last.remove();
    }
    updateAppFilter();
    updateRequestCount();
  }

  function visible(entry) {
    const app = $("filter-app").value;
    if (app === "-" && entry.clientId) return false;
    if (app && app !== "-" && entry.clientId !== app) return false;
    const status = $("filter-status").value;
    const s = entry.status;
    switch (status) {
      case "2xx": return s >= 200 && s < 300;
      case "3xx": return s >= 300 && s < 400;
      case "4xx": return s >= 400 && s < 500;
      case "429": return s === 429;
      case "5xx": return s >= 500;
      case "errors": return s >= 400;
      case "faulted": return Boolean(entry.fault);
      default: return true;
    }
  }

  function applyFilters() {
    for (const row of $("requests-rows").rows) {
      row.hidden = !visible(journal.entries.get(Number(row.dataset.sequence)));
    }
    updateRequestCount();
  }

  function updateRequestCount() {
    const total = journal.entries.size;
    let shown = 0;
    for (const row of $("requests-rows").rows) if (!row.hidden) shown++;
    $("requests-count").textContent = shown === total ? String(total) : `${shown} of ${total}`;
    $("requests-empty").hidden = total > 0;
  }

  let knownApps = [];
  function updateAppFilter() {
    const ids = new Set(knownApps);
    let anonymous = false;
    for (const entry of journal.entries.values()) {
      if (entry.clientId) ids.add(entry.clientId);
      else anonymous = true;
    }
    const select = $("filter-app");
    const wanted = ["", ...[...ids].sort(), ...(anonymous ? ["-"] : [])];
    const current = [...select.options].map((o) => o.value);
    if (wanted.join("\n") === current.join("\n")) return;
    const chosen = select.value;
    select.replaceChildren(...wanted.map((value) => h("option", { value },
      value === "" ? "All applications" : value === "-" ? "(no application)" : value)));
    select.value = wanted.includes(chosen) ? chosen : "";
  }

  async function openRequest(sequence) {
    let detail = null;
    try {
      const { requests } = await call("GET", "requests", {
        query: { after: sequence - 1, detail: 1 },
      });
      detail = requests.find((e) => e.sequence === sequence) || null;
    } catch (err) {
      report(err);
      return;
    }
    if (!detail) {
      toast("That request is no longer in the journal.", true);
      return;
    }
    const target = detail.path + (detail.query ? `?${detail.query}` : "");
    $("request-dialog-title").textContent = `${detail.method} ${target} → ${statusText(detail)}`;
    const facts = [
      ["Time (emulator clock)", detail.time],
      ["Request id", detail.requestId],
      ["Application", detail.clientId || "—"],
      ["Token", detail.tokenFingerprint || "—"],
      ["Latency", formatLatency(detail.durationMs)],
      ["Added delay", addedDelay(detail) === null ? "none"
        : `${formatLatency(addedDelay(detail))} (latency profile and faults)`],
      ["Status", detail.status === 0 ? "none: no HTTP response was sent" : String(detail.status)],
    ];
    if (detail.fault) facts.push(["Fault", faultNote(detail.fault)]);
    if (detail.retryAfter !== null && detail.retryAfter !== undefined) {
      facts.push(["Retry-After", `${detail.retryAfter} s`]);
    }
    const limit = headerValue(detail.response.headers, "x-ratelimit-limit");
    if (limit !== null) {
      const remaining = headerValue(detail.response.headers, "x-ratelimit-remaining");
      const reset = Number(headerValue(detail.response.headers, "x-ratelimit-reset"));
      facts.push(["Rate window", `${remaining} of ${limit} left, resets ${epochTime(reset)}`]);
    }
    if (detail.pagination) {
      const p = detail.pagination;
      facts.push(["Pagination", `offset ${p.offset}, limit ${p.limit}, total ${p.total}${p.hasMore ? ", more" : ""}`]);
    }
    fillMeta($("request-meta"), facts);
    fillHeaders($("request-headers"), detail.request.headers);
    fillHeaders($("response-headers"), detail.response.headers);
    fillBody($("request-body"), detail.request.body);
    fillBody($("response-body"), detail.response.body);
    fillCheck(detail);
    $("request-dialog").showModal();
  }

  /** Under `proxy`: the target's answer, the emulator's and the contract's verdict, side by side,
   * under the differences the check found. */
  function fillCheck(detail) {
    const box = $("request-check");
    const check = detail.check;
    box.hidden = !check;
    if (!check) return;
    const titles = {
      ok: "Check: as the contract and the emulator say",
      differences: `Check: ${plural(check.differences, "difference")}`,
      unchecked: "Check: not checked",
      "proxy-answer": "Check: the proxy's own answer (the target did not answer)",
    };
    $("check-title").textContent = titles[check.verdict] || "Check";
    $("check-found").replaceChildren(...(check.found || []).map((d) => h("li", { class: "difference" },
      h("span", { class: "kind" }, d.kind),
      h("code", {}, d.location),
      h("span", { class: "sides" }, `emulator ${d.emulator} → target ${d.target}`),
      h("span", { class: `agrees ${d.contractAgreesWith}` }, `contract: ${d.contractAgreesWith}`),
      d.detail ? h("div", { class: "detail" }, d.detail) : null)));
    $("check-target-status").textContent = `${detail.status}`;
    fillHeaders($("check-target-headers"), detail.response.headers);
    fillBody($("check-target-body"), detail.response.body);
    const emulator = check.emulator;
    if (emulator) {
      $("check-emulator-hint").textContent = emulator.matched.length
        ? `(with ${emulator.matched.join(", ")})` : "";
      $("check-emulator-status").textContent = `${emulator.status} (${emulator.environment})`;
      fillHeaders($("check-emulator-headers"), emulator.headers);
      fillBody($("check-emulator-body"), emulator.body);
    } else {
      $("check-emulator-hint").textContent = "";
      $("check-emulator-status").textContent = "not compared (see the notes)";
      fillHeaders($("check-emulator-headers"), []);
      fillBody($("check-emulator-body"), "");
    }
    const problems = (verdict) => (verdict && verdict.problems.length
      ? verdict.problems.map((p) => h("li", {}, h("code", {}, p.location), ` ${p.message}`))
      : [h("li", { class: "none" }, "conforms")]);
    $("check-request").replaceChildren(...problems(check.request));
    $("check-response").replaceChildren(...problems(check.response));
    const notes = check.notes.length ? check.notes.map((n) => h("li", {}, n)) : [h("li", { class: "none" }, "—")];
    $("check-notes").replaceChildren(...notes);
  }

  // ------------------------------------------------------------------------------ checks

  /** Under `proxy`, the differences grouped by operation, kind and place; hidden under `serve`. */
  async function refreshChecks() {
    const found = await call("GET", "checks");
    const panel = $("checks");
    const proxying = found.target !== null && found.target !== undefined;
    panel.hidden = !proxying;
    $("panels").classList.toggle("proxying", proxying);
    if (!proxying) return;
    $("checks-count").textContent = String(found.groups.length);
    const recording = found.recording
      ? ` · recording to ${found.recording.file} (${found.recording.written} written${found.recording.refused ? `, ${found.recording.refused} refused` : ""})`
      : "";
    $("checks-summary").textContent = `${plural(found.exchanges, "exchange")} with ${found.target} checked, `
      + `${found.withDifferences} with differences${recording}`;
    $("checks-rows").replaceChildren(...found.groups.map(groupRow));
    $("checks-empty").hidden = found.groups.length > 0;
  }

  function entryLink(sequence) {
    return h("button", { type: "button", class: "link-button", dataset: { sequence } }, `#${sequence}`);
  }

  function groupRow(group) {
    const example = group.example;
    const entries = group.first === group.last
      ? [entryLink(group.first)]
      : [entryLink(group.first), " … ", entryLink(group.last)];
    return h("tr", { title: example.detail || example.request },
      h("td", { class: "op" }, group.operation),
      h("td", {}, h("span", { class: "kind" }, group.kind)),
      h("td", { class: "where" }, group.location),
      h("td", { class: "count-cell" }, group.count.toLocaleString("en-US")),
      h("td", { class: "entries" }, ...entries),
      h("td", { class: "sides" }, `${example.emulator} → ${example.target}`),
      h("td", {}, h("span", { class: `agrees ${example.contractAgreesWith}` }, example.contractAgreesWith)));
  }

  function fillMeta(list, facts) {
    list.replaceChildren(...facts.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))));
  }

  function fillHeaders(table, headers) {
    table.replaceChildren(...headers.map(([key, value]) => h("tr", {}, h("td", {}, key), h("td", {}, value))));
  }

  function fillBody(pre, text) {
    if (!text) {
      pre.textContent = "(empty body)";
      pre.className = "body empty-body";
      return;
    }
    let shown = text;
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      shown = text;
    }
    pre.textContent = shown;
    pre.className = "body";
  }

  // ------------------------------------------------------------------------------- state

  let lastApplications = null;

  async function refreshState() {
    const [applications, faults, scenarios] = await Promise.all([
      call("GET", "applications"),
      call("GET", "faults"),
      call("GET", "scenarios"),
    ]);
    renderScenarios(scenarios);
    lastApplications = applications;
    renderApplications(applications);
    renderQuota(applications.workspaces);
    renderFaults(faults.faults);
    updateWorkspaces(applications.workspaces);
  }

  function meter(name, badges, used, limit, sub, attrs) {
    const share = limit > 0 ? Math.min(used / limit, 1) : 0;
    const bar = h("div", { class: `bar${share >= 1 ? " full" : share >= 0.8 ? " high" : ""}` }, h("span"));
    bar.firstChild.style.width = `${(share * 100).toFixed(1)}%`;
    return h("li", { class: "meter", ...attrs },
      h("div", { class: "meter-top" },
        h("span", { class: "meter-name", title: name }, name), badges,
        h("span", { class: "meter-value" }, `${used} / ${limit}`)),
      bar,
      h("div", { class: "meter-sub" }, sub));
  }

  function renderApplications(data) {
    const windows = new Map(data.rateWindows.map((w) => [w.key, w]));
    knownApps = data.applications.map((a) => a.clientId);
    const items = data.applications.map((app) => {
      // The window the emulator keeps for this application: its own, or its workspace's.
      const key = app.rateKey
        || (windows.has(`app:${app.clientId}`) ? `app:${app.clientId}` : `workspace:${app.workspaceId}`);
      const window = windows.get(key);
      const limit = window ? window.limit
        : app.rateLimit ?? app.rateLimitPerMinute ?? (app.workspace ? app.workspace.rateLimitPerMinute : 0);
      const used = window ? window.used : 0;
      let sub;
      if (!used) sub = "window empty";
      else {
        const inSeconds = clockEpoch === null ? null : Math.max(window.resetEpoch - clockEpoch, 0);
        sub = `resets ${epochTime(window.resetEpoch)}${inSeconds === null ? "" : ` (in ${inSeconds} s)`}`;
      }
      if (key.startsWith("workspace:")) sub += " · shared window";
      const badges = [h("span", { class: `badge ${app.environment}` }, app.environment)];
      if (app.workspace && !app.workspace.apiAccess) badges.push(h("span", { class: "badge off" }, "API off"));
      return meter(app.clientId, badges, used, limit, sub, {
        dataset: { app: app.clientId },
        title: `rate window ${key}`,
      });
    });
    $("state-apps").replaceChildren(...items);
  }

  function renderQuota(workspaces) {
    const live = workspaces.filter((w) => w.kind !== "sandbox");
    const items = live.map((ws) => {
      const badges = [h("span", { class: "badge shared" }, ws.kind)];
      if (!ws.apiAccess) badges.push(h("span", { class: "badge off" }, "API off"));
      return meter(ws.id, badges, ws.linksUsed, ws.linkQuota, "", { dataset: { workspace: ws.id } });
    });
    $("state-quota").replaceChildren(...items);
  }

  function renderFaults(faults) {
    const list = $("faults");
    if (!faults.length) {
      list.replaceChildren(h("li", { class: "none" }, "No faults pending."));
      return;
    }
    list.replaceChildren(...faults.map((f) => {
      const effect = faultEffect(f);
      return h("li", { class: "fault" },
        h("span", { class: "method" }, f.method || "ANY"),
        h("code", { title: f.path || "any path" }, f.path || "*"),
        h("span", {}, `→ ${effect}`),
        h("span", { class: "times" }, `× ${f.times}`));
    }));
  }

  async function addFault(event) {
    event.preventDefault();
    const form = event.target;
    const body = {};
    for (const name of ["method", "path", "network"]) {
      const value = form.elements[name].value.trim();
      if (value) body[name] = value;
    }
    for (const name of ["status", "delayMs", "times", "dribbleMs", "retryAfter"]) {
      const value = form.elements[name].value.trim();
      if (value) body[name] = Number(value);
    }
    try {
      await call("POST", "faults", { body });
      toast("Fault added.");
      await refreshState();
    } catch (err) {
      report(err);
    }
  }

  async function clearFaults() {
    try {
      await call("DELETE", "faults");
      toast("Faults cleared.");
      await refreshState();
    } catch (err) {
      report(err);
    }
  }

  // ---------------------------------------------------------------------------- scenarios

  function renderScenarios(data) {
    const name = $("scenario-name");
    name.textContent = data.loaded || "none";
    name.className = data.loaded ? "scenario-name" : "scenario-name none";
    const select = $("scenario-select");
    if (select.options.length === 1 + data.shipped.length) return;
    select.replaceChildren(h("option", { value: "" }, "Load shipped…"),
      ...data.shipped.map((s) => h("option", { value: s.name, title: s.description }, s.name)));
  }

  /** Reset the emulator and load a shipped scenario (by including it in an empty one). */
  async function loadScenario(name) {
    try {
      await call("POST", "scenario", { body: { version: 1, include: [name] } });
      toast(`Scenario ${name} loaded.`);
      await Promise.all([refreshClock(), refreshState(), pollRequests()]);
      await loadLinks(true);
    } catch (err) {
      report(err);
    }
  }

  /** The current state as a scenario file, downloaded. */
  async function exportScenario() {
    let yaml;
    try {
      yaml = await call("GET", "scenario", { text: true });
    } catch (err) {
      report(err);
      return;
    }
    const stamp = clockEpoch === null ? "" : `-${new Date(clockEpoch * 1000).toISOString().slice(0, 19).replace(/[-:T]/g, "")}`;
    const href = URL.createObjectURL(new Blob([yaml], { type: "application/yaml" }));
    const link = h("a", { href, download: `scenario${stamp}.yaml`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
    toast("Scenario exported.");
  }

  // ------------------------------------------------------------------------------- links

  const links = { generation: 0, seenLinksUsed: null };

  function updateWorkspaces(workspaces) {
    const select = $("links-workspace");
    const wanted = workspaces.map((ws) => [ws.id, ws.kind === "sandbox"
      ? "Sandbox sample set"
      : `${ws.id} (${ws.kind}, ${plural(ws.linksUsed, "link")})`]);
    const current = [...select.options].map((o) => [o.value, o.textContent]);
    if (JSON.stringify(wanted) !== JSON.stringify(current)) {
      const chosen = select.value;
      select.replaceChildren(...wanted.map(([value, label]) => h("option", { value }, label)));
      if (wanted.some(([value]) => value === chosen)) select.value = chosen;
      else {
        select.value = "sandbox";
        loadLinks(true);
      }
    }
    // A live workspace's list follows its links: reload when their number changes.
    const chosen = workspaces.find((ws) => ws.id === select.value);
    const used = chosen && chosen.kind !== "sandbox" ? chosen.linksUsed : null;
    if (links.seenLinksUsed !== null && used !== null && used !== links.seenLinksUsed) loadLinks(false);
    links.seenLinksUsed = used;
  }

  function linkQuery(offset) {
    return {
      workspace: $("links-workspace").value,
      q: $("links-q").value,
      hasVisits: $("links-has-visits").value,
      sortBy: $("links-sort-by").value,
      sortOrder: $("links-sort-order").value,
      limit: $("links-limit").value,
      offset,
    };
  }

  let linksOffset = 0;

  async function loadLinks(fromStart) {
    if (fromStart) {
      linksOffset = 0;
      links.seenLinksUsed = null;
    }
    const generation = ++links.generation;
    const query = linkQuery(linksOffset);
    let page;
    try {
      page = await call("GET", "links", { query });
    } catch (err) {
      if (generation !== links.generation) return;
      $("links-error").textContent = err.message;
      $("links-error").hidden = false;
      $("links-rows").replaceChildren();
      $("links-empty").hidden = true;
      $("links-count").textContent = "0";
      $("links-range").textContent = "—";
      return;
    }
    if (generation !== links.generation) return;
    $("links-error").hidden = true;
    const rows = page.data.map((link) => linkRow(link, query.workspace));
    $("links-rows").replaceChildren(...rows);
    $("links-empty").hidden = rows.length > 0;
    const p = page.pagination;
    $("links-count").textContent = String(p.total);
    $("links-range").textContent = rows.length
      ? `${p.offset + 1}–${p.offset + rows.length} of ${p.total}`
      : `0 of ${p.total}`;
    $("links-prev").disabled = p.offset === 0;
    $("links-next").disabled = !p.hasMore;
    $("links-rows").scrollTop = 0;
    drawSparks(page.data, query.workspace, generation);
  }

  function linkRow(link, workspace) {
    const img = h("img", {
      class: "qr",
      src: `data:image/png;base64,${link.qrCodeBase64}`,
      alt: `QR code of ${link.shortUrl}`,
      width: 64,
      height: 64,
    });
    return h("li", {
      class: "link",
      tabindex: 0,
      dataset: { linkId: link.id, workspace, shortUrl: link.shortUrl },
      title: "Click for the QR code and analytics",
    },
    img,
    h("div", { class: "text" },
      h("div", { class: "title", title: link.title }, link.title),
      h("div", { class: "short" }, link.shortUrl),
      h("div", { class: "dest", title: link.destination }, link.destination),
      h("div", { class: "dates" }, `created ${link.createdAt.slice(0, 10)} · updated ${link.updatedAt.slice(0, 10)}`)),
    h("div", { class: "numbers" },
      h("div", { class: "clicks" }, link.clicks.toLocaleString("en-US"), h("small", {}, " clicks")),
      h("div", { class: "spark-box" })));
  }

  /** Each row's clicks-by-day sparkline, from the link's detail (a few at a time). */
  async function drawSparks(data, workspace, generation) {
    const queue = data.filter((link) => link.clicks > 0);
    const worker = async () => {
      while (queue.length && generation === links.generation) {
        const link = queue.shift();
        let detail;
        try {
          detail = await call("GET", "links", { suffix: `/${encodeURIComponent(link.id)}`, query: { workspace } });
        } catch {
          continue;
        }
        if (generation !== links.generation) return;
        const row = $("links-rows").querySelector(`[data-link-id="${CSS.escape(link.id)}"] .spark-box`);
        if (row) row.innerHTML = chartSvg(detail.analytics.clicksByDay, 92, 26, false);
      }
    };
    await Promise.all(Array.from({ length: DETAIL_CONCURRENCY }, worker));
  }

  /** A bar chart of clicks by day on a true time axis (days without clicks stay empty). */
  function chartSvg(days, width, height, axes) {
    if (!days.length) return "";
    const pad = axes ? { left: 40, right: 8, top: 8, bottom: 20 } : { left: 1, right: 1, top: 2, bottom: 1 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const dayNumbers = days.map((d) => Math.round(Date.parse(`${d.date}T00:00:00Z`) / DAY_MS));
    const first = dayNumbers[0];
    const span = dayNumbers[dayNumbers.length - 1] - first + 1;
    const max = Math.max(1, ...days.map((d) => d.clicks));
    const slot = plotW / span;
    const barW = Math.max(axes ? 2 : 1.5, Math.min(slot * 0.8, axes ? 26 : 10));
    const parts = [];
    parts.push(`<svg class="${axes ? "chart-svg" : "spark"}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="clicks by day">`);
    if (axes) {
      for (const fraction of [0, 0.5, 1]) {
        const y = (pad.top + plotH - fraction * plotH).toFixed(1);
        const label = Math.round(max * fraction);
        parts.push(`<line class="grid" x1="${pad.left}" x2="${width - pad.right}" y1="${y}" y2="${y}"/>`);
        parts.push(`<text class="axis" x="${pad.left - 6}" y="${y}" dy="4" text-anchor="end">${label}</text>`);
      }
      const baseline = height - 5;
      parts.push(`<text class="axis" x="${pad.left}" y="${baseline}">${escapeXml(days[0].date)}</text>`);
      if (days.length > 1) {
        parts.push(`<text class="axis" x="${width - pad.right}" y="${baseline}" text-anchor="end">${escapeXml(days[days.length - 1].date)}</text>`);
      }
    }
    days.forEach((d, i) => {
      const barH = Math.max((d.clicks / max) * plotH, 1);
      const center = pad.left + (dayNumbers[i] - first + 0.5) * slot;
      const x = Math.min(Math.max(center - barW / 2, pad.left), width - pad.right - barW);
      const y = pad.top + plotH - barH;
      parts.push(`<rect class="bar-rect" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barW.toFixed(1)}" height="${barH.toFixed(1)}" rx="1"><title>${escapeXml(d.date)}: ${Number(d.clicks)} clicks</title></rect>`);
    });
    parts.push("</svg>");
    return parts.join("");
  }

  async function openLink(id, workspace) {
    let link;
    try {
      link = await call("GET", "links", { suffix: `/${encodeURIComponent(id)}`, query: { workspace } });
    } catch (err) {
      report(err);
      return;
    }
    const a = link.analytics;
    $("link-dialog-title").textContent = link.title;
    const qr = $("link-qr");
    qr.src = `data:image/png;base64,${link.qrCodeBase64}`;
    qr.alt = `QR code of ${link.shortUrl}`;
    qr.dataset.shortUrl = link.shortUrl;
    $("link-short-url").textContent = link.shortUrl;
    fillMeta($("link-meta"), [
      ["Id", link.id],
      ["Slug", link.slug],
      ["Destination", link.destination],
      ["Clicks", String(link.clicks)],
      ["Unique visitors", String(a.uniqueVisitors)],
      ["Last visit", a.lastVisitedAt || "never"],
      ["Created", link.createdAt],
      ["Updated", link.updatedAt],
    ]);
    const counted = (list, key) => list.length
      ? list.map((item) => h("li", {}, item[key], h("span", {}, item.clicks)))
      : [h("li", { class: "none" }, "—")];
    $("link-countries").replaceChildren(...counted(a.topCountries, "country"));
    $("link-referrers").replaceChildren(...counted(a.topReferrers, "referrer"));
    $("link-devices").replaceChildren(...Object.entries(a.devices).map(([device, clicks]) => h("li", {}, device, h("span", {}, clicks))));
    const dialog = $("link-dialog");
    dialog.showModal();
    const chart = $("link-chart");
    chart.replaceChildren();
    if (a.clicksByDay.length) {
      const width = Math.max(chart.clientWidth - 20, 240);
      chart.innerHTML = chartSvg(a.clicksByDay, width, 150, true);
    } else {
      chart.append(h("p", { class: "chart-empty" }, "No clicks yet."));
    }
  }

  // ------------------------------------------------------------------------------ wiring

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  function wire() {
    $("base-url").textContent = location.origin;

    for (const button of document.querySelectorAll("[data-advance]")) {
      button.addEventListener("click", () => setClock({ advanceSeconds: Number(button.dataset.advance) }));
    }
    $("freeze").addEventListener("click", (event) => setClock({ frozen: !event.currentTarget.dataset.frozen }));
    $("reset").addEventListener("click", async () => {
      try {
        await call("POST", "reset");
        toast("The emulator is back to its start.");
        await Promise.all([refreshClock(), refreshState(), pollRequests(), refreshChecks()]);
        await loadLinks(true);
      } catch (err) {
        report(err);
      }
    });

    $("scenario-select").addEventListener("change", (event) => {
      const name = event.target.value;
      event.target.value = "";
      if (name) loadScenario(name);
    });
    $("scenario-export").addEventListener("click", exportScenario);

    $("filter-app").addEventListener("change", applyFilters);
    $("filter-status").addEventListener("change", applyFilters);
    $("pause").addEventListener("click", (event) => {
      paused = !paused;
      event.currentTarget.setAttribute("aria-pressed", String(paused));
      event.currentTarget.textContent = paused ? "Resume" : "Pause";
      setConnection(paused ? "paused" : "live", paused ? "Paused" : "Live");
    });
    $("clear-requests").addEventListener("click", async () => {
      try {
        await call("DELETE", "requests");
        await pollRequests();
      } catch (err) {
        report(err);
      }
    });
    $("requests-rows").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-sequence]");
      if (row) openRequest(Number(row.dataset.sequence));
    });
    $("checks-rows").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-sequence]");
      if (button) openRequest(Number(button.dataset.sequence));
    });
    $("clear-checks").addEventListener("click", async () => {
      try {
        await call("DELETE", "checks");
        await refreshChecks();
      } catch (err) {
        report(err);
      }
    });

    const form = $("links-form");
    form.addEventListener("submit", (event) => event.preventDefault());
    form.addEventListener("change", (event) => {
      if (event.target.id !== "links-q") loadLinks(true);
    });
    $("links-q").addEventListener("input", debounce(() => loadLinks(true), 250));
    $("links-prev").addEventListener("click", () => {
      linksOffset = Math.max(linksOffset - Number($("links-limit").value), 0);
      loadLinks(false);
    });
    $("links-next").addEventListener("click", () => {
      linksOffset += Number($("links-limit").value);
      loadLinks(false);
    });
    $("links-rows").addEventListener("click", (event) => {
      const row = event.target.closest("li[data-link-id]");
      if (row) openLink(row.dataset.linkId, row.dataset.workspace);
    });

    // Rows open with Enter as well as a click.
    for (const list of [$("requests-rows"), $("links-rows")]) {
      list.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && event.target.matches("[tabindex]")) event.target.click();
      });
    }

    $("fault-form").addEventListener("submit", addFault);
    $("fault-clear").addEventListener("click", clearFaults);

    for (const dialog of document.querySelectorAll("dialog")) {
      dialog.addEventListener("click", (event) => {
        if (event.target === dialog || event.target.closest("[data-close]")) dialog.close();
      });
    }

    $("auth").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("auth-token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("auth-token").value = "";
      $("auth").hidden = true;
      needsToken = false;
      setConnection("", "Connecting");
      loadLinks(true);
    });
  }

  function start() {
    // `#token=…` in the address hands the page the control token once; it is kept for the tab only.
    const match = location.hash.match(/^#token=(.+)$/);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    wire();
    updateRequestCount();
    loadLinks(true);
    tick();
  }

  start();
})();
