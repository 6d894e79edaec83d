/**
 * The Gallery in a real browser against a real hub: a client key sees exactly its own images,
 * an admin sees everyone's and filters by key (the filter kept in the address, so a link shares
 * it), and a picture opens large. Screenshots: gallery-desktop, gallery-phone.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { issueKey } from "../../src/auth/issue.ts";
import {
  axeProblems,
  launchBrowser,
  newContext,
  screenshot,
  signIn,
  untilCount,
} from "../helpers/browser.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

let hub: TestHub;
let browser: Browser;

const CLIENT_PROMPTS = ["a client's teapot", "a client's bicycle"];
const ADMIN_PROMPT = "an admin's lantern";

async function makeImage(key: string, prompt: string, n = 1): Promise<void> {
  const response = await fetch(`${hub.url}/api/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "local/placeholder", prompt, size: "256x256", n }),
  });
  assert.equal(response.status, 200, await response.text());
}

before(async () => {
  [hub, browser] = await Promise.all([startTestHub(), launchBrowser()]);
  for (const prompt of CLIENT_PROMPTS) await makeImage(hub.key, prompt);
  await makeImage(hub.adminKey, ADMIN_PROMPT);
});

after(async () => {
  await browser?.close();
  await hub?.close();
});

const pictures = (page: Page) => page.locator(".gl-grid img");
const altsOf = (page: Page) =>
  pictures(page).evaluateAll((images) => images.map((image) => image.getAttribute("alt")).sort());

test("a client key sees exactly its own images, with no key filter", async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, hub.url, hub.key, "/gallery");
  await page.getByRole("img", { name: CLIENT_PROMPTS[0], exact: true }).waitFor();
  await untilCount(pictures(page), 2);
  assert.deepEqual(await altsOf(page), [...CLIENT_PROMPTS].sort());
  assert.equal(await page.getByLabel("Key", { exact: true }).count(), 0);
  const card = page.locator(".gl-card", { hasText: CLIENT_PROMPTS[0] });
  assert.match(
    (await card.textContent()) ?? "",
    /local\/placeholder.*256x256.*free.*expires in \d+ min/,
  );

  await page.getByLabel("Model", { exact: true }).selectOption("local/placeholder");
  await untilCount(pictures(page), 2);
  assert.equal(new URL(page.url()).searchParams.get("model"), "local/placeholder");
  await context.close();
});

test("a key with no images gets the empty state", async () => {
  const { key } = await issueKey(hub.db, { name: "empty handed", role: "client" });
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, hub.url, key, "/gallery");
  await page.getByText(/No hosted images yet/).waitFor();
  assert.equal(await page.getByRole("link", { name: "make some in the Playground" }).count(), 1);
  await context.close();
});

test("an admin sees all three, filters by the client key's name, and shares the link", async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, hub.url, hub.adminKey, "/gallery");
  await page.getByRole("img", { name: ADMIN_PROMPT, exact: true }).waitFor();
  await untilCount(pictures(page), 3);
  await page
    .locator(".gl-card", { hasText: CLIENT_PROMPTS[0] })
    .getByText("key: test client")
    .waitFor();

  const keys = page.getByLabel("Key", { exact: true });
  await keys.locator("option", { hasText: "test client" }).waitFor({ state: "attached" });
  await keys.selectOption({ label: "test client" });
  await untilCount(pictures(page), 2);
  assert.deepEqual(await altsOf(page), [...CLIENT_PROMPTS].sort());
  const shared = new URL(page.url());
  assert.equal(shared.pathname, "/gallery");
  assert.ok(shared.searchParams.get("key"), "the key filter is in the address");

  // Open large: a modal dialog with Download and Copy URL; Escape closes it.
  await page.getByRole("link", { name: CLIENT_PROMPTS[1], exact: true }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("link", { name: "Download" }).waitFor();
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await dialog.getByRole("button", { name: "Copy URL" }).click();
  await dialog.getByRole("button", { name: "Copied" }).waitFor();
  const copied = await page.evaluate("navigator.clipboard.readText()");
  assert.equal(copied, await dialog.getByRole("img").getAttribute("src"));
  assert.equal(await dialog.getByRole("img").getAttribute("alt"), CLIENT_PROMPTS[1]);
  assert.deepEqual(await axeProblems(page), [], "the dialog passes axe");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.deepEqual(await axeProblems(page), [], "the gallery passes axe");
  await screenshot(page, "gallery-desktop");

  // The shared link opens with the same filter.
  await page.goto(shared.href);
  await page.getByRole("img", { name: CLIENT_PROMPTS[0], exact: true }).waitFor();
  await untilCount(pictures(page), 2);
  assert.equal(
    await page.getByLabel("Key", { exact: true }).inputValue(),
    shared.searchParams.get("key"),
  );

  await page.getByLabel("Key", { exact: true }).selectOption("");
  await untilCount(pictures(page), 3);
  await context.close();
});

test("Load more pages through images made within the same second", async () => {
  const pager = await issueKey(hub.db, { name: "pager", role: "client" });
  // 25 images in three requests, most likely within a second or two: created_at alone cannot
  // tell them apart, so paging must not skip any.
  await makeImage(pager.key, "page me", 10);
  await makeImage(pager.key, "page me", 10);
  await makeImage(pager.key, "page me", 5);
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, hub.url, hub.adminKey, `/gallery?key=${pager.id}`);
  await untilCount(pictures(page), 24);
  await page.getByRole("button", { name: "Load more" }).click();
  await untilCount(pictures(page), 25);
  await page.getByRole("button", { name: "Load more" }).waitFor({ state: "detached" });
  const ids = await pictures(page).evaluateAll((images) =>
    images.map((image) => new URL(image.getAttribute("src") ?? "").pathname),
  );
  assert.equal(new Set(ids).size, 25, "no image twice");
  await context.close();
});

test("on a phone: two columns, no sideways scroll", async () => {
  const context = await newContext(browser, { phone: true });
  const page = await context.newPage();
  await signIn(page, hub.url, hub.key, "/gallery");
  await untilCount(pictures(page), 2);
  const width = Number(await page.evaluate("document.documentElement.scrollWidth"));
  assert.ok(width <= 390, `no sideways scroll (${width})`);
  await screenshot(page, "gallery-phone");
  await context.close();
});
