/**
 * The Keys page in a real browser against a real hub: a key created in the page works until it
 * is revoked in the page, a rotated key's old secret stops and its new one works, credit and
 * edits reach the API, and `/keys` loads directly.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchBrowser, newContext, screenshot, signIn } from "../helpers/browser.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

let hub: TestHub;
let browser: Browser;

before(async () => {
  hub = await startTestHub();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.close();
});

/** `GET /api/me` with `secret`, as any client of the hub would call it. */
async function me(secret: string): Promise<{ status: number; name?: string }> {
  const response = await fetch(`${hub.url}/api/me`, {
    headers: { authorization: `Bearer ${secret}` },
  });
  const body = (await response.json()) as { name?: string };
  return { status: response.status, name: body.name };
}

function rowOf(page: Page, name: string) {
  return page.getByRole("row").filter({ has: page.getByRole("rowheader", { name }) });
}

async function createKey(page: Page, name: string, credit = ""): Promise<string> {
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Credit (USD)").fill(credit);
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = page.getByLabel("New key", { exact: true });
  await assert.doesNotReject(secret.waitFor());
  await rowOf(page, name).waitFor();
  return secret.inputValue();
}

test("create, use, revoke and rotate keys; credit and edit them", async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, hub.url, hub.adminKey);
  await page.getByRole("navigation").getByRole("link", { name: "Keys" }).click();
  await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
  assert.match(page.url(), /\/keys$/);

  // A key made in the page answers as itself, and stops at once when revoked there.
  const secret = await createKey(page, "browser key");
  assert.match(secret, /^sk-/);
  assert.deepEqual(await me(secret), { status: 200, name: "browser key" });
  await page.getByRole("button", { name: "Done" }).click();
  assert.equal(await page.getByLabel("New key", { exact: true }).count(), 0);

  const row = rowOf(page, "browser key");
  await row.getByRole("button", { name: "Revoke", exact: true }).click();
  await row.getByRole("button", { name: "Confirm revoke" }).click();
  await assert.doesNotReject(
    page.getByRole("row").filter({ hasText: "browser key" }).waitFor({ state: "detached" }),
  );
  assert.equal((await me(secret)).status, 401);
  await page.getByLabel("Show revoked").check();
  assert.match((await rowOf(page, "browser key").textContent()) ?? "", /revoked/);

  // Credit adds to a limited key; Edit changes its limits.
  await createKey(page, "limited key", "5");
  const limited = rowOf(page, "limited key");
  assert.match((await limited.textContent()) ?? "", /\$5\.00/);
  await limited.getByRole("button", { name: "Credit", exact: true }).click();
  await page.getByLabel("Amount (USD)").fill("2.5");
  await page.getByRole("button", { name: "Add credit" }).click();
  await limited.getByText("$7.50").waitFor();
  await limited.getByRole("button", { name: "Edit", exact: true }).click();
  const editForm = page.getByRole("form", { name: "Edit limited key" });
  await editForm.getByLabel("Requests per minute").fill("30");
  await editForm.getByRole("button", { name: "Save" }).click();
  await editForm.waitFor({ state: "detached" });
  const keys = await fetch(`${hub.url}/api/admin/keys`, {
    headers: { authorization: `Bearer ${hub.adminKey}` },
  }).then(
    (response) =>
      response.json() as Promise<{
        data: { name: string; rpm: number | null; balance: number | null }[];
      }>,
  );
  const saved = keys.data.find((key) => key.name === "limited key");
  assert.equal(saved?.rpm, 30);
  assert.equal(saved?.balance, 7.5);

  // Rotating the hub's client key: the old secret stops, the new one (shown once) works.
  assert.equal((await me(hub.key)).status, 200);
  const client = rowOf(page, "test client");
  await client.getByRole("button", { name: "Rotate", exact: true }).click();
  await client.getByRole("button", { name: "Confirm rotate" }).click();
  const rotated = await page.getByLabel("New key", { exact: true }).inputValue();
  assert.notEqual(rotated, hub.key);
  assert.equal((await me(hub.key)).status, 401);
  assert.deepEqual(await me(rotated), { status: 200, name: "test client" });

  await screenshot(page, "keys-desktop");
  await context.close();
});

test("/keys loads directly after sign-in, on a phone too", async () => {
  const context = await newContext(browser, { phone: true });
  const page = await context.newPage();
  await signIn(page, hub.url, hub.adminKey, "/keys");
  await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
  await rowOf(page, "limited key").waitFor();
  assert.equal(await rowOf(page, "browser key").count(), 0, "revoked keys are hidden by default");
  await screenshot(page, "keys-phone");
  await context.close();
});
