/** Building blocks for provider tests: a full call with every setting, and input images. */
import assert from "node:assert/strict";
import sharp from "sharp";
import type { InputImage, ProviderCall, ProviderImage } from "../../src/providers/types.ts";

/** A provider call with every setting present (as the seam demands), overridden as given. */
export function providerCall(overrides: Partial<ProviderCall> = {}): ProviderCall {
  return {
    model: "gpt-image-1",
    prompt: "a red fox in the snow",
    count: 1,
    size: undefined,
    quality: undefined,
    style: undefined,
    background: undefined,
    outputFormat: undefined,
    outputCompression: undefined,
    moderation: undefined,
    images: [],
    mask: undefined,
    user: undefined,
    extra: undefined,
    template: undefined,
    signal: new AbortController().signal,
    ...overrides,
  };
}

/** A real image of one colour, as images/inputs would hand it to a provider. */
export async function inputImageOf(
  width: number,
  height: number,
  format: "png" | "jpeg" | "webp" = "png",
): Promise<InputImage> {
  const bytes = await sharp({
    create: { width, height, channels: 4, background: { r: 10, g: 120, b: 200, alpha: 1 } },
  })
    .toFormat(format)
    .toBuffer();
  return { bytes, mimeType: `image/${format}`, width, height };
}

/** The base64 text of a provider image (as a string, whichever form it came in). */
export function base64Of(image: ProviderImage | undefined): string {
  assert.equal(image?.kind, "base64");
  return typeof image.base64 === "string"
    ? image.base64
    : Buffer.concat(image.base64 as Buffer[]).toString("latin1");
}
