/**
 * The console's shell in a real browser: sign-in with an API key (a wrong one gets the API's own
 * error), deep links, a client key kept out of the admin pages, signing out, a revoked key kept
 * in the browser sent back to sign-in, nothing loaded from anywhere but the hub, a phone-sized
 * screen, and an automated accessibility check (axe-core) of every page.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { issueKey } from "../../src/auth/issue.ts";
import { axeProblems, launchBrowser, newContext, screenshot, signIn } from "../helpers/browser.ts";
import { startTestHub, type TestHub } from "../helpers/hub.ts";
import { callHub } from "../helpers/hub-process.ts";

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

const nav = (page: Page) => page.getByRole("navigation");

async function freshPage(options: { phone?: boolean } = {}): Promise<Page> {
  return (await newContext(browser, options)).newPage();
}

describe("signing in", () => {
  it("shows the API's error for a wrong key, and no console", async () => {
    const page = await freshPage();
    await page.goto(hub.url);
    await screenshot(page, "sign-in");
    await page.getByLabel("API key").fill("sk-not-a-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? "", /Incorrect API key provided\./);
    assert.match((await alert.textContent()) ?? "", /invalid_api_key/);
    assert.equal(await nav(page).count(), 0);
    await page.context().close();
  });

  it("opens a deep link after sign-in, with everything from the hub itself", async () => {
    const page = await freshPage();
    const origins = new Set<string>();
    page.on("request", (request) => origins.add(new URL(request.url()).origin));
    await signIn(page, hub.url, hub.adminKey, "/keys");
    assert.equal(new URL(page.url()).pathname, "/keys");
    await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
    const current = nav(page).getByRole("link", { name: "Keys" });
    assert.equal(await current.getAttribute("aria-current"), "page");
    for (const name of ["Playground", "Gallery", "Keys", "Usage", "Models"]) {
      const link = nav(page).getByRole("link", { name, exact: true });
      assert.equal(await link.getAttribute("href"), `/${name.toLowerCase()}`, name);
    }
    // Links change the page without a reload, and the back button returns.
    await nav(page).getByRole("link", { name: "Usage" }).click();
    await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, "/usage");
    await page.goBack();
    await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
    assert.deepEqual([...origins], [hub.url]);
    await page.context().close();
  });

  it("keeps a signed-in tab signed in on reload, and signing out forgets the key", async () => {
    const page = await freshPage();
    await signIn(page, hub.url, hub.adminKey);
    await page.reload();
    await nav(page).getByRole("link", { name: "Gallery" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key").waitFor();
    await page.reload();
    await page.getByLabel("API key").waitFor();
    assert.equal(await nav(page).count(), 0);
    await page.context().close();
  });

  it("sends a key revoked since back to sign-in", async () => {
    const made = await issueKey(hub.db, { name: "short-lived", role: "client" });
    const page = await freshPage();
    await signIn(page, hub.url, made.key);
    const revoked = await callHub(hub, "DELETE", `/api/admin/keys/${made.id}`, {
      key: hub.adminKey,
    });
    assert.equal(revoked.status, 200);
    await page.reload();
    await page.getByLabel("API key").waitFor();
    assert.equal(await nav(page).count(), 0);
    await page.context().close();
  });
});

describe("a client key", () => {
  it("sees its own pages and cannot reach the admin ones", async () => {
    const page = await freshPage();
    await signIn(page, hub.url, hub.key);
    const links = await nav(page).getByRole("link").allInnerTexts();
    assert.deepEqual(links, ["Playground", "Gallery", "Usage"]);
    for (const path of ["/keys", "/models"]) {
      await page.goto(`${hub.url}${path}`);
      await page.getByText("This page is for admin keys.").waitFor();
      assert.equal(await page.getByRole("button", { name: "Create key" }).count(), 0);
    }
    await screenshot(page, "client-admin-page");
    // The API is the boundary, not the page: the key itself is refused there.
    const direct = await callHub(hub, "GET", "/api/admin/keys", { key: hub.key });
    assert.equal(direct.status, 403);
    await page.context().close();
  });
});

describe("on a phone", () => {
  it("fits the screen and keeps every link reachable", async () => {
    const page = await freshPage({ phone: true });
    await signIn(page, hub.url, hub.adminKey);
    for (const name of ["Playground", "Gallery", "Keys", "Usage", "Models"]) {
      await nav(page).getByRole("link", { name, exact: true }).click();
      await page.getByRole("heading", { name, level: 1 }).waitFor();
      // Expressions as text: the tests are compiled without the DOM's types.
      const overflow = (await page.evaluate(
        "document.documentElement.scrollWidth - window.innerWidth",
      )) as number;
      assert.ok(overflow <= 1, `${name} overflows the screen by ${overflow}px`);
    }
    await page.context().close();
  });
});

describe("accessibility", () => {
  it("every page passes axe-core's WCAG A/AA rules, and the keyboard reaches the navigation", async () => {
    const page = await freshPage();
    await signIn(page, hub.url, hub.adminKey);
    await page.keyboard.press("Tab");
    const first = await page.evaluate("document.activeElement?.textContent");
    assert.equal(first, "Skip to content");
    const problems: string[] = [];
    for (const name of ["Playground", "Gallery", "Keys", "Usage", "Models"]) {
      await nav(page).getByRole("link", { name, exact: true }).click();
      await page.getByRole("heading", { name, level: 1 }).waitFor();
      await page.waitForLoadState("networkidle");
      problems.push(...(await axeProblems(page)).map((problem) => `${name}: ${problem}`));
    }
    await page.context().close();
    const signInPage = await freshPage();
    await signInPage.goto(hub.url);
    problems.push(...(await axeProblems(signInPage)).map((problem) => `sign-in: ${problem}`));
    await signInPage.context().close();
    assert.deepEqual(problems, []);
  });
});
