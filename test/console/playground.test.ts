/**
 * The Playground in a real browser against a real hub: the model's options, a generation at a
 * chosen size (the image decoded), several images, an API error shown as the API gives it, an
 * edit with a painted mask (the mask checked in the request that left the page), and jobs that
 * run side by side. Screenshots: playground-desktop, playground-edit, playground-phone.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import sharp from "sharp";
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
let context: BrowserContext;
let page: Page;

before(async () => {
  // OpenAI's models are listed (a key is set) but never called: nothing listens at that port.
  [hub, browser] = await Promise.all([
    startTestHub({
      OPENAI_API_KEY: "sk-test-never-used",
      OPENAI_BASE_URL: "http://127.0.0.1:9/v1",
      MODEL_LIST_REFRESH_SECONDS: "0",
    }),
    launchBrowser(),
  ]);
  context = await newContext(browser);
  page = await context.newPage();
  await signIn(page, hub.url, hub.adminKey, "/playground");
});

after(async () => {
  await browser?.close();
  await hub?.close();
});

async function decoded(url: string): Promise<{ width?: number; height?: number }> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  return sharp(Buffer.from(await response.arrayBuffer())).metadata();
}

const field = (label: string) => page.getByLabel(label, { exact: true });
const generateButton = () => page.getByRole("button", { name: "Generate", exact: true });
const resultImages = (prompt: string) => page.getByRole("img", { name: prompt, exact: true });

async function generate(prompt: string): Promise<void> {
  await field("Prompt").fill(prompt);
  await generateButton().click();
}

const optionValues = (label: string) =>
  field(label)
    .locator("option")
    .evaluateAll((options) => options.map((option) => option.getAttribute("value")));

test("the form shows the options each model takes, with its price", async () => {
  // A fresh profile starts at the first active model.
  assert.equal(await field("Model").inputValue(), "gpt-image-2");
  const labels = await field("Model")
    .locator("option")
    .evaluateAll((options) => options.map((option) => option.textContent));
  assert.ok(labels.includes("dall-e-2 (retired → gpt-image-2)"), labels.join(", "));

  // gpt-image-2 takes any WxH within a rule: common sizes it allows, Custom…, priced by tier.
  const ruled = await optionValues("Size");
  assert.ok(ruled.includes("1024x1024") && ruled.includes("custom") && ruled.includes("auto"));
  assert.ok(!ruled.includes("512x512"), "below the rule's fewest pixels");
  await field("Size").selectOption("custom");
  await field("Width").fill("1600");
  await field("Height").fill("896");
  await field("Quality").selectOption("low");
  assert.equal(await page.locator(".pg-price").textContent(), "≈ $0.0069 for 1 image");
  await field("Size").selectOption("1024x1024");
  assert.equal(await page.locator(".pg-price").textContent(), "≈ $0.006 for 1 image");

  // dall-e-2: its three sizes only, no style, background or format; priced per size.
  await field("Model").selectOption("dall-e-2");
  assert.deepEqual(await optionValues("Size"), ["256x256", "512x512", "1024x1024"]);
  for (const absent of ["Style", "Background", "Output format"]) {
    assert.equal(await field(absent).count(), 0, `${absent} is not offered`);
  }
  await field("Size").selectOption("512x512");
  await field("Number of images").fill("2");
  assert.equal(await page.locator(".pg-price").textContent(), "≈ $0.036 for 2 images");

  // gpt-image-1: a background, `auto` among its sizes, its default quality chosen.
  await field("Model").selectOption("gpt-image-1");
  assert.deepEqual(await optionValues("Background"), ["", "transparent", "opaque", "auto"]);
  assert.ok((await optionValues("Size")).includes("auto"));
  assert.equal(await field("Quality").inputValue(), "auto");

  // An image to edit, from the file input; a model that cannot edit says so.
  const png = await sharp({
    create: { width: 64, height: 48, channels: 3, background: "#3366cc" },
  })
    .png()
    .toBuffer();
  await field("Image to edit").setInputFiles({
    name: "blue.png",
    mimeType: "image/png",
    buffer: png,
  });
  await page.getByRole("img", { name: "To edit: blue.png" }).waitFor();
  await field("Model").selectOption("dall-e-3");
  await page.getByText("dall-e-3 does not edit images").waitFor();
  await field("Prompt").fill("anything");
  assert.equal(await generateButton().isDisabled(), true);
  await page.getByRole("button", { name: "Remove image" }).click();
  assert.equal(await generateButton().isDisabled(), false);
  await field("Number of images").fill("1");
});

test("local/placeholder at 512x512: a signed hub URL of a real 512x512 image", async () => {
  await field("Model").selectOption("local/placeholder");
  const sizes = await field("Size")
    .locator("option")
    .evaluateAll((options) => options.map((option) => option.getAttribute("value")));
  for (const size of ["256x256", "512x512", "1024x1024", "custom"]) {
    assert.ok(sizes.includes(size), `${size} in ${sizes.join(", ")}`);
  }
  assert.equal(await field("Size").inputValue(), "1024x1024", "the model's default size");
  await field("Size").selectOption("512x512");
  assert.equal(
    await page.evaluate(() => localStorage.getItem("image-hub.playground.model")),
    "local/placeholder",
  );
  // The placeholder's price row is 0: the form says so beside Generate.
  assert.equal(await page.locator(".pg-price").textContent(), "free");

  await generate("a lighthouse at dusk");
  const image = resultImages("a lighthouse at dusk");
  await image.waitFor();
  const src = (await image.getAttribute("src")) ?? "";
  assert.ok(src.startsWith(`${hub.url}/files/images/`), src);
  assert.match(src, /[?&]signature=/);
  const meta = await decoded(src);
  assert.deepEqual([meta.width, meta.height], [512, 512]);
  // The card names the model that served it and, once looked up, what it cost.
  const card = page.locator(".pg-job", { has: image });
  await card.getByText(/local\/placeholder · 512x512 · 1 image · [\d.]+ s · free/).waitFor();
});

test("n=2 makes two images; a prompt over the model's limit shows the API's error", async () => {
  await field("Number of images").fill("2");
  await generate("two foxes in the snow");
  await untilCount(resultImages("two foxes in the snow"), 2);
  await screenshot(page, "playground-desktop");

  const models = (await (
    await fetch(`${hub.url}/api/models`, { headers: { authorization: `Bearer ${hub.adminKey}` } })
  ).json()) as { data: { id: string; max_prompt_length: number }[] };
  const limit = models.data.find((model) => model.id === "local/placeholder")?.max_prompt_length;
  assert.ok(limit);
  await field("Number of images").fill("1");
  await generate("x".repeat(limit + 1));
  await page.getByText(/too long for this model/).waitFor();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.deepEqual(await axeProblems(page), [], "results and an error pass axe");
  assert.match(
    (await alert.textContent()) ?? "",
    new RegExp(
      `Invalid 'prompt': must be at most ${limit} characters\\..*HTTP 400.*string_above_max_length`,
    ),
  );
});

test("Edit: a painted mask goes to /api/images/edits with the image, as OpenAI's mask", async () => {
  let sent: { type: string; body: Buffer } | undefined;
  await page.route("**/api/images/edits", async (route) => {
    const request = route.request();
    sent = {
      type: (await request.allHeaders())["content-type"] ?? "",
      body: request.postDataBuffer() ?? Buffer.alloc(0),
    };
    await route.continue();
  });
  const source = page.locator(".pg-result", { has: resultImages("a lighthouse at dusk") });
  await source.getByRole("button", { name: "Edit", exact: true }).click();
  const mask = page.getByRole("img", { name: "Mask: paint over the area to change" });
  await mask.waitFor();
  // The image's own size is chosen for the edit.
  assert.equal(await field("Size").inputValue(), "512x512");
  await mask.scrollIntoViewIfNeeded();
  const box = await mask.boundingBox();
  assert.ok(box);
  await page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.3);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.75, box.y + box.height * 0.6, { steps: 12 });
  await page.mouse.up();
  await field("Prompt").fill("the lighthouse in a snowstorm");
  await screenshot(page, "playground-edit");
  assert.deepEqual(await axeProblems(page), [], "the edit panel passes axe");
  await generateButton().click();

  const edited = resultImages("the lighthouse in a snowstorm");
  await edited.waitFor();
  const meta = await decoded((await edited.getAttribute("src")) ?? "");
  assert.deepEqual([meta.width, meta.height], [512, 512]);
  await page.unroute("**/api/images/edits");

  assert.ok(sent, "the edit request left the page");
  assert.match(sent.type, /^multipart\/form-data; boundary=/);
  const form = await new Response(sent.body, { headers: { "content-type": sent.type } }).formData();
  assert.equal(form.get("model"), "local/placeholder");
  assert.equal(form.get("prompt"), "the lighthouse in a snowstorm");
  assert.equal(form.get("response_format"), "url");
  assert.equal(form.get("size"), "512x512");
  const image = form.get("image");
  const maskFile = form.get("mask");
  assert.ok(image instanceof Blob && maskFile instanceof Blob, "parts named image and mask");
  // The mask is the image's size, transparent where painted and opaque elsewhere.
  const { data, info } = await sharp(Buffer.from(await maskFile.arrayBuffer()))
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [512, 512]);
  let clear = 0;
  let opaque = 0;
  for (let index = 3; index < data.length; index += 4) {
    if (data[index] === 0) clear += 1;
    if (data[index] === 255) opaque += 1;
  }
  assert.ok(clear > 2000, `painted pixels are transparent (${clear})`);
  assert.ok(opaque > 512 * 512 * 0.5, `the rest is opaque (${opaque})`);

  // The hub's ledger has the request; its rows do not say edit, but the image is there.
  const usage = (await (
    await fetch(`${hub.url}/api/usage`, { headers: { authorization: `Bearer ${hub.adminKey}` } })
  ).json()) as { data: { status: string; model: string; size: string }[] };
  assert.deepEqual(
    [usage.data[0]?.status, usage.data[0]?.model, usage.data[0]?.size],
    ["succeeded", "local/placeholder", "512x512"],
  );

  await page.getByRole("button", { name: "Remove image" }).click();
  await field("Image to edit").waitFor();
});

test("two jobs at once both finish; a third is cancelled; the form stays usable", async () => {
  // Slowed down so the jobs overlap for certain and their progress can be seen.
  await page.route("**/api/images/generations", async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await route.continue().catch(() => undefined);
  });
  await field("Prompt").fill("twin towers of cloud");
  await generateButton().click();
  await generateButton().click();
  const progress = page.getByRole("progressbar", { name: "Generating: twin towers of cloud" });
  await untilCount(progress, 2);
  assert.match(
    (await page.locator(".pg-elapsed").first().textContent()) ?? "",
    / s · (typically|longer than the typical) \d/,
  );
  await screenshot(page, "playground-jobs");
  await untilCount(resultImages("twin towers of cloud"), 2);

  await generate("never mind");
  const card = page.locator(".pg-job", { hasText: "never mind" });
  await card.getByRole("button", { name: "Cancel" }).click();
  await card.getByText("Cancelled.").waitFor();
  await page.unroute("**/api/images/generations");

  // "Again" on a result runs its settings once more.
  const twin = page.locator(".pg-result", { has: resultImages("twin towers of cloud") }).first();
  await twin.getByRole("button", { name: "Again" }).click();
  await untilCount(resultImages("twin towers of cloud"), 3);

  // Open large: a modal dialog, closed with Escape.
  await page.getByRole("link", { name: "a lighthouse at dusk", exact: true }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("button", { name: "Close" }).waitFor();
  assert.deepEqual(await axeProblems(page), [], "the dialog passes axe");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
});

test("the model that served and the hub's warnings are shown (a retired model's successor)", async () => {
  // No provider here: the hub's reply for a retired model is played back with its headers.
  const picture = await resultImages("a lighthouse at dusk").first().getAttribute("src");
  let sent: unknown;
  await page.route("**/api/images/generations", async (route) => {
    sent = route.request().postDataJSON();
    await route.fulfill({
      status: 200,
      contentType: "application/json",
      headers: {
        "x-image-hub-model": "gpt-image-2",
        "x-image-hub-record-id": "not-a-record",
        "x-image-hub-warnings": "dall-e-2 is retired: served by gpt-image-2 | resized to 512x512",
      },
      body: JSON.stringify({ created: 1, data: [{ url: picture }] }),
    });
  });
  await field("Model").selectOption("dall-e-2");
  await field("Size").selectOption("512x512");
  await generate("a retired painter");
  await resultImages("a retired painter").waitFor();
  await page.unroute("**/api/images/generations");
  const card = page.locator(".pg-job", { hasText: "a retired painter" });
  await card.getByText("dall-e-2 → served by gpt-image-2").waitFor();
  const warnings = card.getByRole("list", { name: "Warnings from the hub" });
  assert.deepEqual(await warnings.getByRole("listitem").allTextContents(), [
    "dall-e-2 is retired: served by gpt-image-2",
    "resized to 512x512",
  ]);
  assert.deepEqual(sent, {
    model: "dall-e-2",
    prompt: "a retired painter",
    n: 1,
    size: "512x512",
    quality: "standard",
    response_format: "url",
  });
  await field("Model").selectOption("local/placeholder");
});

test("on a phone: one column, and Ctrl+Enter in the prompt generates", async () => {
  const phone = await newContext(browser, { phone: true });
  try {
    const small = await phone.newPage();
    await signIn(small, hub.url, hub.adminKey, "/playground");
    await small.getByLabel("Model", { exact: true }).selectOption("local/placeholder");
    await small.getByLabel("Size", { exact: true }).selectOption("256x256");
    const prompt = small.getByLabel("Prompt", { exact: true });
    await prompt.fill("a small red boat");
    await prompt.press("Control+Enter");
    await small.getByRole("img", { name: "a small red boat", exact: true }).waitFor();
    const width = Number(await small.evaluate("document.documentElement.scrollWidth"));
    assert.ok(width <= 390, `no sideways scroll (${width})`);
    await screenshot(small, "playground-phone");
  } finally {
    await phone.close();
  }
});
