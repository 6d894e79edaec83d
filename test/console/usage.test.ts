/**
 * The Usage page in a real browser against a real hub with real requests behind it: charts and
 * their tables, the key filter kept in the address, the CSV export matching the API's, and a
 * client key's own view (its balance, its rows, no key filter).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { launchBrowser, newContext, screenshot, signIn } from "../helpers/browser.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

let hub: TestHub;
let browser: Browser;
let clientId: string;

async function api(key: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${hub.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function generate(key: string, size: string, n: number): Promise<number> {
  const body = { model: "local/placeholder", prompt: "usage test", size, n };
  const response = await api(key, "/v1/images/generations", body);
  await response.arrayBuffer();
  return response.status;
}

before(async () => {
  hub = await startTestHub();
  browser = await launchBrowser();
  // The client: 3 images in 2 requests and one refused size; the admin: 3 images in 1 request.
  assert.equal(await generate(hub.key, "64x64", 2), 200);
  assert.equal(await generate(hub.key, "128x96", 1), 200);
  assert.equal(await generate(hub.key, "99999x64", 1), 400);
  assert.equal(await generate(hub.adminKey, "256x256", 3), 200);
  clientId = ((await (await api(hub.key, "/api/me")).json()) as { id: string }).id;
});

after(async () => {
  await browser?.close();
  await hub?.close();
});

/** Waits until `check` holds, for what the page does after a response arrives. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function modelRow(page: Page, model: string): Locator {
  return page
    .getByRole("table", { name: "Requests, images and spend per model" })
    .getByRole("row")
    .filter({ has: page.getByRole("rowheader", { name: model, exact: true }) });
}

async function cellTexts(row: Locator): Promise<string[]> {
  return (await row.getByRole("cell").allTextContents()).map((text) => text.trim());
}

function records(page: Page): Locator {
  return page.getByRole("region", { name: "Requests" }).locator("tbody tr");
}

test("an admin sees every key's usage, filters by key and exports the same rows", async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, hub.url, hub.adminKey);
  await page.getByRole("navigation").getByRole("link", { name: "Usage" }).click();
  await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();
  await page.locator("canvas").first().waitFor({ state: "visible" });
  assert.ok(await page.getByRole("img", { name: /per day/ }).isVisible());

  // local/placeholder: 4 requests (the refused one included), 6 images, free.
  await modelRow(page, "local/placeholder").waitFor();
  assert.deepEqual(await cellTexts(modelRow(page, "local/placeholder")), ["4", "6", "$0.00"]);
  assert.equal(await records(page).count(), 4);

  await page.getByLabel("Key", { exact: true }).selectOption({ label: "test client" });
  await until(async () => (await records(page).count()) === 3, "the client's 3 rows");
  assert.match(page.url(), new RegExp(`[?&]key=${clientId}(&|$)`));
  const keyCells = await records(page).locator("td:nth-child(2)").allTextContents();
  assert.deepEqual(keyCells, ["test client", "test client", "test client"]);
  assert.match((await records(page).first().textContent()) ?? "", /failed\s*invalid_size/);
  assert.deepEqual(await cellTexts(modelRow(page, "local/placeholder")), ["3", "3", "$0.00"]);

  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Export CSV" }).click(),
  ]);
  assert.match(download.suggestedFilename(), /^image-hub-usage-\d{4}-\d{2}-\d{2}\.csv$/);
  const csv = (await readFile(await download.path(), "utf8")).trim().split("\r\n");
  const from = await page.getByLabel("From (UTC)").inputValue();
  const to = await page.getByLabel("To (UTC)").inputValue();
  const query = new URLSearchParams({ key: clientId, from, to });
  const exported = await api(hub.adminKey, `/api/usage/export?${query}`);
  const fromApi = (await exported.text()).trim().split("\r\n");
  assert.equal(csv[0], fromApi[0]);
  assert.match(csv[0] ?? "", /^id,key_id,model,/);
  assert.equal(csv.length - 1, 3);
  assert.equal(csv.length, fromApi.length);

  await screenshot(page, "usage-desktop");
  await context.close();
});

test("a client key sees its balance and its own rows, with no key filter", async () => {
  const context = await newContext(browser, { phone: true });
  const page = await context.newPage();
  await signIn(page, hub.url, hub.key, "/usage");
  await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();
  const balance = page.locator(".usage-summary div", { hasText: "Balance" });
  assert.match((await balance.textContent()) ?? "", /Balance\s*unlimited/);
  await modelRow(page, "local/placeholder").waitFor();
  assert.deepEqual(await cellTexts(modelRow(page, "local/placeholder")), ["3", "3", "$0.00"]);
  assert.equal(await records(page).count(), 3);
  assert.equal(await page.getByLabel("Key", { exact: true }).count(), 0);
  await screenshot(page, "usage-phone");

  // The status filter, kept in the address: a reload shows the same view.
  await page.getByLabel("Status").selectOption("failed");
  await until(async () => (await records(page).count()) === 1, "the one failed row");
  assert.match(page.url(), /[?&]status=failed(&|$)/);
  await page.reload();
  await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();
  await until(async () => (await records(page).count()) === 1, "the failed row after a reload");
  assert.equal(await page.getByLabel("Status").inputValue(), "failed");
  assert.match((await records(page).first().textContent()) ?? "", /invalid_size/);
  await context.close();
});
