// End-to-end check of the web editor in a real browser (headless Chromium).
//
// Run by the Rust test suite against a running `sluice serve`, with:
//   SLUICE_URL         e.g. http://127.0.0.1:8080
//   SLUICE_TOKEN       a tenant token
//   SLUICE_MODULE      a JS codec module with an active, Cayenne-LPP-style version
//   SLUICE_BINDING     a binding whose codec is that module
//   SLUICE_SCREENSHOT  where to write the final full-page PNG
//   CHROMIUM           optional, the browser binary (default /usr/bin/chromium)
//
// It logs in, opens the module, checks that a syntax error is shown on its line, compiles
// the original code green, activates it, prints READY-FOR-MQTT (the test then publishes
// `03 67 01 10 05 67 00 FF` to the binding), waits for the decoded message in the live view,
// takes a screenshot and prints E2E-OK. On failure it says which step failed and what the
// page showed, writes `${SLUICE_SCREENSHOT}.failed.png` and exits 1.
import { chromium } from "playwright-core";

const COMPILE_TIMEOUT_MS = 60_000;
const MESSAGE_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;
// A tenant's first Rust build compiles the SDK's dependencies: minutes on a small machine.
const RUST_COMPILE_TIMEOUT_MS = 600_000;
const OVERALL_TIMEOUT_MS = 900_000; // below the 1000 s after which the Rust test kills the script
const EXPECTED_VALUE = "27.2"; // temperature_3 of 03 67 01 10 05 67 00 FF
const BROKEN_LINE = "  let broken = ;"; // QuickJS reports the `;` on this very line

const env = readEnv(["SLUICE_URL", "SLUICE_TOKEN", "SLUICE_MODULE", "SLUICE_BINDING", "SLUICE_SCREENSHOT"]);
let page;
let currentStep = "starting the browser";

function readEnv(names) {
  const missing = names.filter((name) => !process.env[name]);
  if (missing.length) {
    console.error(`E2E-FAILED: missing environment variables: ${missing.join(", ")}`);
    process.exit(1);
  }
  return Object.fromEntries(names.map((name) => [name, process.env[name]]));
}

async function step(name, action) {
  currentStep = name;
  console.log(`step: ${name}`);
  await action();
}

/// The text of each element the editor reports into, for failure messages.
async function pageReport() {
  if (!page) return "(no page)";
  const ids = ["login-error", "status", "source-note", "compile-error", "vectors-error", "summary", "try-output", "live-note"];
  const lines = [`url: ${page.url()}`];
  for (const id of ids) {
    const text = await page.locator(`#${id}`).textContent({ timeout: 1000 }).catch(() => null);
    if (text?.trim()) lines.push(`#${id}: ${text.trim()}`);
  }
  const failing = await page.locator(".vector.fail").allTextContents().catch(() => []);
  for (const text of failing) lines.push(`failing vector: ${text.trim()}`);
  const messages = await page.locator(".message").allInnerTexts().catch(() => []);
  lines.push(`live messages: ${messages.length}${messages.length ? `, newest: ${messages[0].replace(/\s+/g, " ").trim()}` : ""}`);
  return lines.join("\n  ");
}

async function main() {
  // A last resort if the browser hangs: the test that runs this script must not.
  setTimeout(() => {
    console.error(`E2E-FAILED: still running after ${OVERALL_TIMEOUT_MS / 1000} s, in step "${currentStep}"`);
    process.exit(1);
  }, OVERALL_TIMEOUT_MS).unref();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on("console", (message) => {
      if (message.type() === "error") console.error(`browser console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => console.error(`browser page error: ${error.stack || error}`));
    await run();
  } catch (error) {
    const message = error.message.replace(/\x1b\[[0-9;]*m/g, ""); // Playwright colours its call logs
    console.error(`E2E-FAILED in step "${currentStep}": ${message}`);
    console.error(`  the page showed:\n  ${await pageReport()}`);
    if (page) await page.screenshot({ path: `${env.SLUICE_SCREENSHOT}.failed.png`, fullPage: true }).catch(() => {});
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// Waits until a compile started by a click on #compile has answered, well or not.
async function compileFinished() {
  await page.locator('#summary[data-state="pass"], #summary[data-state="fail"]').waitFor({ timeout: COMPILE_TIMEOUT_MS });
}

async function run() {
  let original;
  await step("open the editor and log in", async () => {
    await page.goto(new URL("/editor/", env.SLUICE_URL).href);
    await page.fill("#token", env.SLUICE_TOKEN);
    await page.click("#login");
    await page.locator("#modules [data-module], #login-error:not(:empty)").first().waitFor();
    const modules = await page.$$eval("#modules [data-module]", (buttons) => buttons.map((b) => b.dataset.module));
    if (!modules.includes(env.SLUICE_MODULE)) throw new Error(`the module list offers [${modules}], not ${env.SLUICE_MODULE}`);
  });

  await step(`open module ${env.SLUICE_MODULE}`, async () => {
    await page.click(`#modules [data-module="${env.SLUICE_MODULE}"]`);
    await page.waitForFunction(() => {
      const code = document.querySelector("#code");
      return !code.readOnly && /function\s+decodeUplink\s*\(/.test(code.value);
    });
    original = await page.inputValue("#code");
  });

  await step("a syntax error is shown on its line", async () => {
    const lines = original.split("\n");
    const at = lines.findIndex((line) => /function\s+decodeUplink\s*\(/.test(line));
    lines.splice(at + 1, 0, BROKEN_LINE);
    const expectedLine = at + 2;
    await page.fill("#code", lines.join("\n"));
    await page.click("#compile");
    await compileFinished();
    const message = await page.textContent("#compile-error");
    const reported = Number(/^line (\d+), column \d+: /.exec(message)?.[1]);
    if (reported !== expectedLine) throw new Error(`expected an error on line ${expectedLine}, #compile-error says: ${message}`);
    const gutter = await page.locator("#code-editor .gutter .error").allTextContents();
    if (gutter.join() !== String(reported)) throw new Error(`gutter marks [${gutter}], expected line ${reported}`);
    const marked = await page.$$eval("#code-editor .line", (els) => els.flatMap((el, i) => (el.classList.contains("error") ? [i + 1] : [])));
    if (marked.join() !== String(reported)) throw new Error(`the code marks lines [${marked}], expected line ${reported}`);
  });

  await step("leaving with unsaved changes asks first, and staying keeps them", async () => {
    const edited = await page.inputValue("#code");
    const unsaved = await page.$eval("#module-title", (el) => el.classList.contains("unsaved"));
    if (!unsaved) throw new Error("the module's title does not show unsaved changes");
    let asked = null;
    page.once("dialog", (dialog) => {
      asked = dialog.message();
      dialog.dismiss();
    });
    await page.click("#logout");
    if (!asked || !asked.includes("unsaved changes")) throw new Error(`no confirmation before leaving (dialog: ${asked})`);
    if (await page.isHidden("#app-view")) throw new Error("logged out although the user chose to stay");
    if ((await page.inputValue("#code")) !== edited) throw new Error("the unsaved code was lost");
  });

  await step("the original code compiles and its vectors pass", async () => {
    await page.fill("#code", original);
    await page.click("#compile");
    await compileFinished();
    const summary = await page.textContent("#summary");
    const failing = await page.locator(".vector.fail").count();
    if (!/^(\d+) of \1 vectors passed$/.test(summary) || failing > 0) throw new Error(`summary: ${summary}, ${failing} failing vectors`);
    if (await page.isVisible("#compile-error")) throw new Error("the syntax error is still shown");
  });

  await step("save and activate", async () => {
    await page.click("#activate");
    await page.locator("#status.ok, #status.error").waitFor({ timeout: COMPILE_TIMEOUT_MS });
    const status = await page.textContent("#status");
    if (!/^version \d+ is live$/.test(status)) throw new Error(`#status says: ${status}`);
    console.log(`activated: ${status}`);
  });

  await step(`the live view shows a decoded message of binding ${env.SLUICE_BINDING}`, async () => {
    const bindings = await page.$$eval("#binding option", (options) => options.map((o) => o.value));
    if (!bindings.includes(env.SLUICE_BINDING)) throw new Error(`#binding offers [${bindings}], not ${env.SLUICE_BINDING}`);
    if ((await page.inputValue("#binding")) !== env.SLUICE_BINDING) await page.selectOption("#binding", env.SLUICE_BINDING);
    console.log("READY-FOR-MQTT");
    await page.locator(".message").filter({ hasText: EXPECTED_VALUE }).first().waitFor({ timeout: MESSAGE_TIMEOUT_MS });
  });

  await step("screenshot", async () => {
    await page.screenshot({ path: env.SLUICE_SCREENSHOT, fullPage: true });
  });

  await step("create a Rust codec from the template", async () => {
    await page.click("#new-module");
    await page.fill("#new-module-name", "climate");
    await page.selectOption("#new-module-kind", "rust-codec");
    await page.click("#create-module");
    await page.waitForFunction(() => {
      const code = document.querySelector("#code");
      return !code.readOnly && code.value.includes("export_codec!(Climate)");
    });
    const language = await page.textContent("#language");
    if (language !== "Rust") throw new Error(`#language says ${language}`);
  });

  let rustSource;
  await step("the Rust template compiles in the backend and its vectors pass", async () => {
    rustSource = await page.inputValue("#code");
    await page.click("#compile");
    await page.locator('#summary[data-state="pass"], #summary[data-state="fail"]').waitFor({ timeout: RUST_COMPILE_TIMEOUT_MS });
    const summary = await page.textContent("#summary");
    if (!/^(\d+) of \1 vectors passed$/.test(summary)) throw new Error(`summary: ${summary}`);
  });

  await step("a Rust compile error is shown on its line", async () => {
    const lines = rustSource.split("\n");
    const at = lines.findIndex((line) => line.includes("/ 10.0;"));
    if (at < 0) throw new Error("the template has no `/ 10.0;` line");
    lines[at] = lines[at].replace("/ 10.0;", "/ ten;");
    await page.fill("#code", lines.join("\n"));
    await page.click("#compile");
    await page.locator('#summary[data-state="fail"]').waitFor({ timeout: RUST_COMPILE_TIMEOUT_MS });
    const message = await page.textContent("#compile-error");
    const reported = Number(/^line (\d+), column \d+: /.exec(message)?.[1]);
    if (reported !== at + 1) throw new Error(`expected an error on line ${at + 1}, #compile-error says: ${message}`);
    if (!message.includes("ten")) throw new Error(`the compiler's message is missing: ${message}`);
    const gutter = await page.locator("#code-editor .gutter .error").allTextContents();
    if (gutter.join() !== String(reported)) throw new Error(`gutter marks [${gutter}], expected line ${reported}`);
    await page.screenshot({ path: env.SLUICE_SCREENSHOT.replace(/\.png$/, "") + "-rust.png", fullPage: true });
  });
  console.log("E2E-OK");
}

await main();
