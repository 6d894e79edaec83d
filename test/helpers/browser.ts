/**
 * A real browser for the console's tests: Debian's Chromium driven by playwright-core, headless,
 * with nothing downloaded (no browser fetch, no background networking). Screenshots go to
 * test-artifacts/console/ to be looked at after a run.
 */
import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import {
  type Browser,
  type BrowserContext,
  chromium,
  type Locator,
  type Page,
} from "playwright-core";
import { ensureConsoleBuilt } from "../../scripts/build-console.ts";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const SCREENSHOT_DIR = path.resolve(import.meta.dirname, "../../test-artifacts/console");

export async function launchBrowser(): Promise<Browser> {
  await ensureConsoleBuilt();
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-sync",
    ],
  });
}

/** A fresh profile (its own storage) with downloads allowed, at a desktop or a phone's size. */
export async function newContext(
  browser: Browser,
  options: { phone?: boolean } = {},
): Promise<BrowserContext> {
  return browser.newContext({
    acceptDownloads: true,
    viewport: options.phone ? { width: 390, height: 844 } : { width: 1280, height: 860 },
    deviceScaleFactor: 1,
    isMobile: options.phone ?? false,
    hasTouch: options.phone ?? false,
  });
}

/** Signs in on the sign-in page with `key` and waits for the console's navigation. */
export async function signIn(page: Page, hubUrl: string, key: string, path = "/"): Promise<void> {
  await page.goto(new URL(path, hubUrl).href);
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation").getByRole("link", { name: "Playground" }).waitFor();
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const axeSource = await readFile(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);

/**
 * axe-core's WCAG A/AA violations in the page as it is now, named by rule and element. It runs
 * in the page through `evaluate`, which the page's Content-Security-Policy does not govern.
 */
export async function axeProblems(page: Page): Promise<string[]> {
  await page.evaluate(axeSource);
  const result = (await page.evaluate(
    `axe.run({ runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } })`,
  )) as { violations: { id: string; nodes: { target: string[] }[] }[] };
  return result.violations.map(
    (violation) =>
      `${violation.id} at ${violation.nodes.map((node) => node.target.join(" ")).join(", ")}`,
  );
}

/** Waits until the locator matches exactly `count` elements. */
export async function untilCount(locator: Locator, count: number, timeout = 10_000): Promise<void> {
  const end = Date.now() + timeout;
  let seen = -1;
  while (Date.now() < end) {
    seen = await locator.count();
    if (seen === count) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`expected ${count} matches, saw ${seen}`);
}
