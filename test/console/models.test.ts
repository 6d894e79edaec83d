/**
 * The Models page in a real browser against a real hub whose OpenAI credential points at the
 * loopback simulator: the catalog's status and prices, its search, and the credential's health
 * with a Test button answered in its row.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { launchBrowser, newContext, screenshot, signIn } from "../helpers/browser.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { type OpenAISimulator, startOpenAISimulator } from "../sim/openai.ts";

let sim: OpenAISimulator;
let hub: TestHub;
let browser: Browser;

before(async () => {
  sim = await startOpenAISimulator();
  hub = await startTestHub({
    OPENAI_API_KEY: sim.apiKey,
    OPENAI_BASE_URL: sim.baseURL,
    MODEL_LIST_REFRESH_SECONDS: "0",
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.close();
  await sim?.close();
});

/** A model's one-line summary in the catalog. */
function summaryOf(page: Page, id: string): Locator {
  return page.locator(`details[data-model="${id}"] > summary`);
}

async function text(locator: Locator): Promise<string> {
  return ((await locator.textContent()) ?? "").replace(/\s+/g, " ");
}

test("the catalog shows status, successor and price, and search filters it", async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, hub.url, hub.adminKey);
  await page.getByRole("navigation").getByRole("link", { name: "Models" }).click();
  await page.getByRole("heading", { name: "Models", level: 1 }).waitFor();

  const placeholder = summaryOf(page, "local/placeholder");
  await placeholder.waitFor();
  assert.match(await text(placeholder), /active/);
  assert.match(await text(placeholder), /free/);
  assert.match(await text(placeholder), /configured/);

  const dalle = summaryOf(page, "dall-e-2");
  assert.match(await text(dalle), /retired/);
  assert.match(await text(dalle), /successor gpt-image-2/);
  assert.match(await text(dalle), /\$0\.016–\$0\.02 per image/);
  // The details open on the full price table.
  await dalle.click();
  const prices = page.locator('details[data-model="dall-e-2"]').getByRole("table", {
    name: "Price per image",
  });
  assert.equal(await prices.locator("tbody tr").count(), 3);

  const models = page.getByRole("list", { name: "Models" }).locator(":scope > li");
  const all = await models.count();
  assert.ok(all >= 50, `${all} models`);
  await page.getByLabel("Search").fill("local/placeholder");
  assert.equal(await models.count(), 1);
  await page.getByLabel("Search").fill("dall-e");
  assert.deepEqual(
    await page
      .locator("details[data-model]")
      .evaluateAll((items) => items.map((item) => item.getAttribute("data-model"))),
    ["dall-e-2", "dall-e-3"],
  );
  await page.getByLabel("Search").fill("");
  await page.getByLabel("Status").selectOption("retired");
  await page.getByLabel("Configured only").check();
  assert.ok((await models.count()) < all);
  for (const summary of await page.locator("details[data-model] > summary").all()) {
    assert.match(await text(summary), /retired .*configured/);
  }
  await page.getByLabel("Status").selectOption("");
  await page.getByLabel("Configured only").uncheck();
  await page.getByLabel("Search").fill("gpt-image");

  // The OpenAI credential from the environment, healthy; its Test answers in its row.
  const row = page
    .getByRole("row")
    .filter({ has: page.getByRole("rowheader", { name: /environment/ }) });
  assert.match(await text(row), /openai|sk-|…/);
  assert.match(await text(row), /active/);
  await row.getByRole("button", { name: "Test", exact: true }).click();
  await row
    .getByRole("status")
    .filter({ hasText: /works|failed|not tested/ })
    .waitFor();
  assert.match(await text(row.getByRole("status")), /✓ works in \d+ ms/);

  await screenshot(page, "models-desktop");
  await context.close();
});

test("/models on a phone", async () => {
  const context = await newContext(browser, { phone: true });
  const page = await context.newPage();
  await signIn(page, hub.url, hub.adminKey, "/models");
  await summaryOf(page, "local/placeholder").waitFor();
  await page.getByLabel("Search").fill("gpt-image-2");
  await summaryOf(page, "gpt-image-2").click();
  await screenshot(page, "models-phone");
  await context.close();
});
