// The Sluice codec editor: log in with an API token, edit a JavaScript codec and its test
// vectors, compile and test them on the server, save and activate a version, and watch the
// decoded messages of a binding that uses the codec.
import { highlightLines } from "./highlight.js";

const $ = (selector) => document.querySelector(selector);
const TOKEN_KEY = "sluice-token";
const LIVE_INTERVAL_MS = 1000;
const LIVE_MAX_MESSAGES = 20;

const TEMPLATE_CODEC = `// A TS013 codec: decodeUplink gets { bytes, fPort, recvTime } (bytes is an array of
// numbers) and returns { data } with the decoded document, or { errors } to reject the frame.
function decodeUplink(input) {
  var bytes = input.bytes;
  if (bytes.length < 3) {
    return { errors: ["expected 3 bytes, got " + bytes.length] };
  }
  var raw = (bytes[0] << 8) | bytes[1];
  if (raw & 0x8000) raw -= 0x10000; // signed 16-bit, tenths of a degree
  return {
    data: {
      temperature: raw / 10,
      humidity: bytes[2]
    }
  };
}
`;

const TEMPLATE_VECTORS = `vectors:
  - name: typical reading
    payload_hex: "00 E1 64"
    expect: { temperature: 22.5, humidity: 100 }

  - name: negative temperature
    payload_hex: "FF 9C 32"
    expect: { temperature: -10, humidity: 50 }

  - name: short frame
    payload_hex: "00 E1"
    expect_error: { kind: invalid-input, message_contains: expected 3 bytes }
`;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  module: null, // the open module, as GET /v1/modules/{name} answers it
  language: "javascript", // the open source's language: "javascript" or "rust"
  editable: false, // false for an uploaded component (no source) or a router
  ticket: 0, // bumped by every navigation: answers that arrive for an older one are dropped
  version: null, // the version shown in the editors (null for a new module's template)
  saved: "", // the code and vectors as last loaded or saved: anything else is unsaved
};

// ---------------------------------------------------------------------------------------
// Unsaved changes: the editors against what was last loaded or saved.

function editorsText() {
  return `${codeEditor.value}\u0000${vectorsEditor.value}`;
}

function hasUnsavedChanges() {
  return Boolean(state.module && state.editable && editorsText() !== state.saved);
}

// Takes what the editors hold now as saved.
function markSaved() {
  state.saved = editorsText();
  showUnsaved();
}

function showUnsaved() {
  const unsaved = hasUnsavedChanges();
  $("#module-title").classList.toggle("unsaved", unsaved);
  $("#module-title").title = unsaved ? "unsaved changes" : "";
}

// Whether it is fine to leave the open module: nothing unsaved, or the user says so.
function mayLeave() {
  return !hasUnsavedChanges() || confirm(`Discard your unsaved changes to ${state.module.name}?`);
}

// ---------------------------------------------------------------------------------------
// The API

// A failed API call: the HTTP status and the `{error: {code, message}}` body's members.
class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message ?? `the server answered HTTP ${status}`);
    this.status = status;
    this.code = error.code ?? `http-${status}`;
    this.body = body ?? {};
  }

  toString() {
    return `${this.code}: ${this.message}`;
  }
}

// Calls the API with the token. A 401 ends the session (back to the login form).
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    // Relative to /editor/, so the API is found under whatever prefix serves the editor.
    response = await fetch(`../v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, { error: { code: "network", message: `the server cannot be reached (${e.message})` } });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: { message: text.slice(0, 300) } };
  }
  if (response.status === 401) showLogin("invalid token");
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const modulePath = (name) => `/modules/${encodeURIComponent(name)}`;

// Shows an error in `element`. A 401 was already handled by returning to the login form.
function showError(element, error) {
  if (error.status === 401) return;
  element.textContent = String(error);
  element.hidden = false;
}

// Runs `action` with `button` disabled and relabelled, restoring it afterwards.
async function busy(button, label, action) {
  const original = button.textContent;
  button.disabled = true;
  button.textContent = label;
  try {
    await action();
  } finally {
    button.textContent = original;
    button.disabled = !state.editable;
  }
}

// ---------------------------------------------------------------------------------------
// The editor: a transparent textarea over a highlighted <pre>, with a line-number gutter.

class Editor {
  constructor(root) {
    this.language = root.dataset.language;
    this.textarea = root.querySelector("textarea");
    this.layer = root.querySelector(".layer");
    this.code = this.layer.querySelector("code");
    this.gutter = root.querySelector(".gutter");
    this.errorLine = null;
    this.gutterKey = "";
    this.textarea.addEventListener("input", () => this.render());
    this.textarea.addEventListener("scroll", () => this.syncScroll());
    this.textarea.addEventListener("keydown", (event) => this.onKey(event));
  }

  get value() {
    return this.textarea.value;
  }

  set value(text) {
    this.textarea.value = text;
    this.textarea.scrollTop = 0;
    this.errorLine = null;
    this.render();
  }

  setLanguage(language) {
    this.language = language;
    this.render();
  }

  setReadOnly(readOnly, placeholder = "") {
    this.textarea.readOnly = readOnly;
    this.textarea.placeholder = placeholder;
  }

  // Marks line `line` (1-based) as the error line, or clears the mark with null.
  markLine(line) {
    this.errorLine = line;
    this.render();
    if (line) this.scrollToLine(line);
  }

  render() {
    const lines = highlightLines(this.value, this.language);
    this.code.innerHTML = lines
      .map((html, i) => `<span class="line${i + 1 === this.errorLine ? " error" : ""}">${html}</span>`)
      .join("");
    this.renderGutter(lines.length);
    this.syncScroll();
  }

  // Line numbers, rebuilt only when the line count or the error line changed.
  renderGutter(count) {
    const key = `${count}:${this.errorLine}`;
    if (key === this.gutterKey) return;
    this.gutterKey = key;
    this.gutter.replaceChildren(
      ...Array.from({ length: count }, (_, i) => {
        const number = document.createElement("div");
        number.textContent = i + 1;
        if (i + 1 === this.errorLine) number.className = "error";
        return number;
      }),
    );
  }

  syncScroll() {
    this.layer.scrollTop = this.gutter.scrollTop = this.textarea.scrollTop;
    this.layer.scrollLeft = this.textarea.scrollLeft;
  }

  // Scrolls line `line` into view (a third from the top) unless it is visible already.
  scrollToLine(line) {
    const lineHeight = parseFloat(getComputedStyle(this.textarea).lineHeight);
    const top = (line - 1) * lineHeight;
    const { scrollTop, clientHeight } = this.textarea;
    if (top >= scrollTop && top + lineHeight <= scrollTop + clientHeight) return;
    this.textarea.scrollTop = Math.max(0, top - clientHeight / 3);
    this.syncScroll();
  }

  // Tab inserts two spaces. execCommand keeps the browser's undo history; where it is
  // unavailable, setRangeText edits without it.
  onKey(event) {
    if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey || this.textarea.readOnly) return;
    event.preventDefault();
    if (!document.execCommand("insertText", false, "  ")) {
      const { selectionStart, selectionEnd } = this.textarea;
      this.textarea.setRangeText("  ", selectionStart, selectionEnd, "end");
      this.render();
    }
  }
}

const codeEditor = new Editor($("#code-editor"));
const vectorsEditor = new Editor($("#vectors-editor"));

// ---------------------------------------------------------------------------------------
// Login and logout

function showLogin(message = "") {
  stopLive();
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.module = null;
  $("#app-view").hidden = true;
  $("#logout").hidden = true;
  $("#login-view").hidden = false;
  $("#login-error").textContent = message;
  $("#token").value = "";
  $("#token").focus();
}

async function logIn(token) {
  state.token = token;
  try {
    await refreshModules();
  } catch (error) {
    if (error.status !== 401) showLogin(String(error));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
  $("#logout").hidden = false;
  closeModule();
}

// ---------------------------------------------------------------------------------------
// The module list

async function refreshModules() {
  const { modules } = await api("GET", "/modules");
  $("#modules").replaceChildren(...modules.map(moduleButton));
  markSelectedModule();
}

function moduleButton(module) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.module = module.name;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = module.name;
  const meta = document.createElement("span");
  meta.className = "meta";
  const active = module.active_version == null ? "no active version" : `v${module.active_version} active`;
  meta.textContent = `${module.world} · ${active}`;
  button.append(name, meta);
  return button;
}

function markSelectedModule() {
  for (const button of $("#modules").children) {
    const selected = button.dataset.module === state.module?.name;
    button.classList.toggle("selected", selected);
    button.setAttribute("aria-current", selected ? "true" : "false");
  }
}

function openNewModuleForm(open) {
  $("#new-module-form").hidden = !open;
  $("#new-module-error").textContent = "";
  $("#new-module-name").value = "";
  if (open) $("#new-module-name").focus();
}

// `kind`: "js-codec", "rust-codec" or "rust-router".
async function createModule(name, kind) {
  try {
    await api("POST", "/modules", { name, world: kind.endsWith("router") ? "router" : "codec" });
  } catch (error) {
    if (error.status !== 401) $("#new-module-error").textContent = String(error);
    return;
  }
  openNewModuleForm(false);
  await openModule(name, kind);
  await refreshModules().catch((error) => setStatus(`the module list could not be refreshed: ${error}`, "error"));
}

// ---------------------------------------------------------------------------------------
// The module view

// Shows the empty state instead of a module, with `note` (an error) or the default hint.
function closeModule(note = "Select a module, or create one (JavaScript or Rust).") {
  stopLive();
  state.module = null;
  $("#module-view").hidden = true;
  $("#empty-note").hidden = false;
  $("#empty-note").textContent = note;
  markSelectedModule();
}

// `kind` ("js-codec", "rust-codec", "rust-router") picks the template of a module without
// versions; by default a codec starts in JavaScript and a router in Rust.
async function openModule(name, kind) {
  const ticket = ++state.ticket;
  stopLive();
  clearOutputs();
  let module;
  try {
    module = await api("GET", modulePath(name));
  } catch (error) {
    if (error.status !== 401 && ticket === state.ticket) closeModule(`cannot open ${name}: ${error}`);
    return;
  }
  if (ticket !== state.ticket) return;
  state.module = module;
  $("#empty-note").hidden = true;
  $("#module-view").hidden = false;
  $("#module-title").textContent = module.name;
  markSelectedModule();
  fillVersionSelect();
  // Nothing of the previous module stays editable while this one loads.
  setEditable(false, "");
  codeEditor.value = vectorsEditor.value = "";
  const newest = Math.max(0, ...module.versions.map((v) => v.version));
  state.version = null;
  if (newest) await loadVersion(newest);
  else await startFromTemplate(kind ?? (module.world === "router" ? "rust-router" : "js-codec"));
  await loadBindings();
}

function fillVersionSelect() {
  const { versions, active_version: active } = state.module;
  const select = $("#version");
  const options = [...versions].sort((a, b) => b.version - a.version).map((v) => {
    const option = document.createElement("option");
    option.value = v.version;
    const when = new Date(v.created_at_ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
    option.textContent = `v${v.version}${v.version === active ? " (active)" : ""} · ${when}`;
    return option;
  });
  select.replaceChildren(...options);
  select.disabled = options.length === 0;
}

async function startFromTemplate(kind) {
  const ticket = state.ticket;
  let code = TEMPLATE_CODEC;
  let vectors = TEMPLATE_VECTORS;
  if (kind !== "js-codec") {
    // The Rust templates are the ones `sluice new` writes, served next to this page.
    const world = kind === "rust-router" ? "router" : "codec";
    try {
      [code, vectors] = await Promise.all([
        fetchTemplate(`template-rust-${world}.rs`),
        fetchTemplate(`template-rust-${world}.vectors.yaml`),
      ]);
    } catch (error) {
      if (ticket === state.ticket) setStatus(`cannot load the template: ${error.message}`, "error");
      return;
    }
  }
  if (ticket !== state.ticket) return;
  setLanguage(kind === "js-codec" ? "javascript" : "rust");
  setEditable(true, "");
  codeEditor.value = code;
  vectorsEditor.value = vectors;
  markSaved();
  setStatus("new module: edit the template, then compile & test");
}

// A template with the module's name filled in (`my-codec` → type `MyCodec`).
async function fetchTemplate(file) {
  const response = await fetch(file);
  if (!response.ok) throw new Error(`${file}: HTTP ${response.status}`);
  const name = state.module.name;
  const type = name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join("");
  return (await response.text()).replaceAll("{{name}}", name).replaceAll("{{Type}}", /^[A-Z]/.test(type) ? type : `M${type}`);
}

function setLanguage(language) {
  state.language = language;
  codeEditor.setLanguage(language);
  $("#language").textContent = language === "rust" ? "Rust" : "JavaScript";
}

async function loadVersion(version) {
  const ticket = ++state.ticket;
  clearOutputs();
  let loaded;
  try {
    loaded = await api("GET", `${modulePath(state.module.name)}/versions/${version}`);
  } catch (error) {
    if (error.status !== 401) setStatus(`cannot load version ${version}: ${error}`, "error");
    return;
  }
  if (ticket !== state.ticket) return;
  $("#version").value = String(version);
  state.version = version;
  const hasSource = typeof loaded.source === "string";
  setLanguage(loaded.source_language ?? "javascript");
  setEditable(hasSource, hasSource ? "" : "uploaded component – no source");
  codeEditor.value = loaded.source ?? "";
  vectorsEditor.value = loaded.test_vectors_yaml ?? "";
  markSaved();
  setStatus(`version ${version} is ${version === state.module.active_version ? "active" : "not active"}`);
}

// Without source the editors are read-only and the buttons that send source are off.
function setEditable(editable, note) {
  state.editable = editable;
  codeEditor.setReadOnly(!editable, note);
  vectorsEditor.setReadOnly(!editable);
  for (const id of ["#compile", "#activate", "#try"]) $(id).disabled = !editable;
  $("#source-note").textContent = note;
  $("#source-note").hidden = !note;
}

function setStatus(text, kind = "") {
  $("#status").textContent = text;
  $("#status").className = `status ${kind}`;
}

function clearOutputs() {
  clearCompileErrors();
  setSummary("Not compiled yet.", "");
  $("#vector-list").replaceChildren();
  $("#try-output").hidden = true;
}

function clearCompileErrors() {
  codeEditor.markLine(null);
  vectorsEditor.markLine(null);
  for (const id of ["#compile-error", "#vectors-error"]) {
    $(id).hidden = true;
    $(id).textContent = "";
  }
}

// The code, under the member for its language.
function codeBody() {
  return state.language === "rust" ? { rust_source: codeEditor.value } : { js_source: codeEditor.value };
}

// The request body that sends the editors' contents; an empty vectors box is left out.
function sourceBody() {
  const body = codeBody();
  if (vectorsEditor.value.trim()) body.vectors_yaml = vectorsEditor.value;
  return body;
}

// ---------------------------------------------------------------------------------------
// Compile & test, try, save & activate

async function compileAndTest() {
  const ticket = state.ticket;
  clearOutputs();
  setSummary("Compiling…", "");
  await busy($("#compile"), "Compiling…", async () => {
    try {
      const result = await api("POST", `${modulePath(state.module.name)}/check`, sourceBody());
      if (ticket === state.ticket) showVectors(result.vectors);
    } catch (error) {
      if (ticket !== state.ticket) return;
      setSummary("Not compiled.", "fail");
      showBuildError(error);
    }
  });
}

// Errors about the source or the vectors, shown where they are (see showBuildError).
const SOURCE_ERRORS = new Set(["js-syntax-error", "rust-compile-error", "invalid-vectors", "vectors-failed"]);

// Shows a failed compile where it belongs: a syntax error on its line, a vectors problem
// under the vectors box, failing vectors in the results, anything else under the code.
function showBuildError(error) {
  const { line, column, failures, diagnostics } = error.body;
  if (error.code === "js-syntax-error" && line) {
    codeEditor.markLine(line);
    // The message usually starts with the position already; show it once.
    const message = error.message.replace(/^line \d+, column \d+: /, "");
    $("#compile-error").textContent = `line ${line}, column ${column}: ${message}`;
    $("#compile-error").hidden = false;
  } else if (error.code === "rust-compile-error" && diagnostics) {
    // The first error on its line; every error as rustc shows it, with the code excerpt.
    const errors = diagnostics.filter((d) => d.level === "error");
    if (line) codeEditor.markLine(line);
    const first = errors[0];
    const head = first && line ? `line ${line}, column ${column}: ${first.message}` : error.message;
    $("#compile-error").textContent = [head, ...errors.map((d) => d.rendered.trimEnd())].join("\n\n");
    $("#compile-error").hidden = false;
  } else if (error.code === "invalid-vectors") {
    const at = /line (\d+)/.exec(error.message);
    if (at) vectorsEditor.markLine(Number(at[1]));
    showError($("#vectors-error"), error);
  } else if (error.code === "vectors-failed" && failures) {
    showVectors(failures.map((f) => ({ name: f.name, passed: false, diff: f.diff })));
    setSummary(`${failures.length} vector${failures.length === 1 ? "" : "s"} failed – version not saved`, "fail");
  } else {
    showError($("#compile-error"), error);
  }
}

function setSummary(text, kind) {
  $("#summary").textContent = text;
  $("#summary").className = kind || "note";
  $("#summary").dataset.state = kind;
}

function showVectors(vectors) {
  $("#vector-list").replaceChildren(...vectors.map(vectorRow));
  const failed = vectors.filter((v) => !v.passed).length;
  if (vectors.length === 0) setSummary("Compiled; there are no test vectors.", "pass");
  else if (failed) setSummary(`${failed} of ${vectors.length} vectors failed`, "fail");
  else setSummary(`${vectors.length} of ${vectors.length} vectors passed`, "pass");
}

function vectorRow(vector) {
  const row = document.createElement("li");
  row.className = `vector ${vector.passed ? "pass" : "fail"}`;
  const head = document.createElement("div");
  head.className = "head";
  head.append(
    span("mark", vector.passed ? "✓" : "✗"),
    span("name", vector.name),
    span("fuel", vector.fuel_consumed == null ? "" : `${vector.fuel_consumed.toLocaleString()} fuel`),
  );
  row.append(head);
  if (!vector.passed && vector.diff) row.append(diffBlock(vector.diff));
  return row;
}

// A diff with `-` lines red and `+` lines green.
function diffBlock(diff) {
  const pre = document.createElement("pre");
  pre.className = "diff";
  for (const line of diff.split("\n")) {
    const kind = line.startsWith("-") ? "del" : line.startsWith("+") ? "add" : "";
    pre.append(span(kind, `${line}\n`));
  }
  return pre;
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

async function tryPayload() {
  const ticket = state.ticket;
  const output = $("#try-output");
  const payload_hex = $("#try-hex").value.trim();
  const port = Number($("#try-port").value || 1);
  output.hidden = false;
  output.textContent = "Running…";
  await busy($("#try"), "Running…", async () => {
    try {
      const result = await api("POST", `${modulePath(state.module.name)}/check`, {
        ...codeBody(),
        try: { payload_hex, port },
      });
      if (ticket !== state.ticket) return;
      output.textContent = JSON.stringify(result.try, null, 2);
      clearCompileErrors();
    } catch (error) {
      if (ticket !== state.ticket) return;
      output.textContent = error.status === 401 ? "" : String(error);
      if (SOURCE_ERRORS.has(error.code)) showBuildError(error);
    }
  });
}

async function saveAndActivate() {
  const ticket = state.ticket;
  const name = state.module.name;
  clearCompileErrors();
  setStatus("Saving…");
  await busy($("#activate"), "Saving…", async () => {
    let saved;
    try {
      saved = await api("POST", `${modulePath(name)}/versions`, sourceBody());
      $("#activate").textContent = "Activating…";
      await api("POST", `${modulePath(name)}/versions/${saved.version}/activate`);
    } catch (error) {
      if (error.status === 401 || ticket !== state.ticket) return;
      setStatus(saved ? `version ${saved.version} saved, not activated: ${error}` : `not saved: ${error}`, "error");
      if (SOURCE_ERRORS.has(error.code)) showBuildError(error);
      return;
    }
    if (ticket === state.ticket) {
      state.version = saved.version;
      markSaved();
      setStatus(`version ${saved.version} is live`, "ok");
    }
    await refreshAfterActivation(name);
  });
}

async function refreshAfterActivation(name) {
  try {
    const module = await api("GET", modulePath(name));
    if (state.module?.name === name) {
      state.module = module;
      fillVersionSelect();
      $("#version").value = String(module.active_version);
    }
    await refreshModules();
  } catch (error) {
    if (error.status !== 401) setStatus(`${$("#status").textContent}; the list could not be refreshed: ${error}`, "error");
  }
}

// ---------------------------------------------------------------------------------------
// The live view: polls the selected binding's recent messages while a module is open.

const live = { generation: 0, timer: null, shown: "" };

// Stops polling; a request still in flight sees the new generation and is dropped.
function stopLive() {
  live.generation++;
  clearTimeout(live.timer);
  live.shown = "";
  $("#messages").replaceChildren();
}

async function loadBindings() {
  const name = state.module.name;
  stopLive();
  $("#binding").replaceChildren();
  $("#binding").disabled = true;
  $("#live-note").textContent = "";
  let bindings;
  try {
    ({ bindings } = await api("GET", "/bindings"));
  } catch (error) {
    if (error.status !== 401) $("#live-note").textContent = `cannot list bindings: ${error}`;
    return;
  }
  if (state.module?.name !== name) return; // another module was opened meanwhile
  const mine = bindings.filter((b) => b.codec === name);
  $("#binding").replaceChildren(...mine.map((b) => new Option(b.name, b.name)));
  $("#binding").disabled = mine.length === 0;
  if (mine.length) startLive(mine[0].name);
  else $("#live-note").textContent = "No binding uses this codec.";
}

function startLive(binding) {
  stopLive();
  const generation = live.generation;
  $("#live-note").textContent = `Waiting for messages on ${binding}…`;
  const poll = async () => {
    try {
      const { messages } = await api("GET", `/bindings/${encodeURIComponent(binding)}/recent`);
      if (generation !== live.generation) return;
      showMessages(binding, messages);
    } catch (error) {
      if (generation !== live.generation || error.status === 401) return;
      $("#live-note").textContent = `cannot read ${binding}: ${error}`;
      live.shown = ""; // so that the next answer replaces this note
    }
    live.timer = setTimeout(poll, LIVE_INTERVAL_MS);
  };
  poll();
}

function showMessages(binding, messages) {
  const newest = messages.slice(-LIVE_MAX_MESSAGES).reverse();
  const key = JSON.stringify(newest);
  if (key === live.shown) return; // unchanged: keep the DOM (and any text selection)
  live.shown = key;
  $("#live-note").textContent = newest.length ? `Last ${newest.length} messages on ${binding}, newest first` : `No messages on ${binding} yet.`;
  $("#messages").replaceChildren(...newest.map(messageRow));
}

function messageRow(message) {
  const row = document.createElement("li");
  row.className = "message";
  const head = document.createElement("div");
  head.className = "head";
  const time = new Date(message.received_at_ms).toLocaleTimeString();
  head.append(span("time", time), span("device", message.device_id), span("port", `port ${message.port}`), span(`badge ${message.outcome}`, message.outcome));
  row.append(head, span("body", messageBody(message)));
  return row;
}

// The decoded document when there is one, otherwise why the message was not delivered.
function messageBody(message) {
  if (message.document !== undefined) return compactJson(message.document);
  if (message.reason) return `${message.kind ? `${message.kind}: ` : ""}${message.reason}`;
  if (message.reasons?.length) return message.reasons.join("; ");
  if (message.outputs) return `outputs: ${message.outputs.join(", ")}`;
  return "";
}

// JSON on one line with a space after each separator: `{ "a": 1, "b": [1, 2] }`.
function compactJson(value) {
  if (Array.isArray(value)) return `[${value.map(compactJson).join(", ")}]`;
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  const members = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${compactJson(v)}`);
  return members.length ? `{ ${members.join(", ")} }` : "{}";
}

// ---------------------------------------------------------------------------------------
// Wiring

function onSubmit(selector, handler) {
  $(selector).addEventListener("submit", (event) => {
    event.preventDefault();
    handler();
  });
}

onSubmit("#login-form", () => logIn($("#token").value.trim()));
onSubmit("#new-module-form", () => mayLeave() && createModule($("#new-module-name").value.trim(), $("#new-module-kind").value));
onSubmit("#try-form", () => state.editable && tryPayload());
$("#logout").addEventListener("click", () => mayLeave() && showLogin());
$("#new-module").addEventListener("click", () => openNewModuleForm(true));
$("#cancel-module").addEventListener("click", () => openNewModuleForm(false));
$("#modules").addEventListener("click", (event) => {
  const button = event.target.closest("[data-module]");
  if (button && mayLeave()) openModule(button.dataset.module);
});
$("#version").addEventListener("change", () => {
  if (mayLeave()) loadVersion(Number($("#version").value));
  else $("#version").value = String(state.version);
});
for (const textarea of document.querySelectorAll(".editor textarea")) {
  textarea.addEventListener("input", showUnsaved);
}
window.addEventListener("beforeunload", (event) => {
  if (hasUnsavedChanges()) event.preventDefault();
});
$("#compile").addEventListener("click", compileAndTest);
$("#activate").addEventListener("click", saveAndActivate);
$("#binding").addEventListener("change", () => startLive($("#binding").value));

if (state.token) logIn(state.token);
else showLogin();
