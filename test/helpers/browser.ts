/**
 * A real browser for the console's tests: Debian's Chromium driven by playwright-core, headless,
 * with nothing downloaded (no browser fetch, no background networking). Screenshots go to
 * test-artifacts/console/ to be looked at after a run.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
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
