/**
 * local/placeholder: not an AI model. It draws a test pattern from the prompt, the same pattern
 * for the same prompt, size and index, at any size, with no network. It is what the quick start
 * and the tests use without provider keys, and it says what it is on the image itself.
 *
 * For an edit it lays a light veil and the prompt over the first input image, which stays in
 * plain sight: a client can see its input made it through the hub.
 */
import { createHash } from "node:crypto";
import { MIME_TYPE_OF_FORMAT } from "../image-formats.ts";
import { loadSharp } from "../sharp.ts";
import type { ImageProvider, OutputFormat, ProviderCall, ProviderResult } from "./types.ts";

export function createLocalProvider(): ImageProvider {
  return {
    name: "local",
    async generate(call: ProviderCall): Promise<ProviderResult> {
      call.signal.throwIfAborted();
      const [width, height] = dimensionsOf(call.size);
      const format = call.outputFormat ?? "png";
      const images = await Promise.all(
        Array.from({ length: call.count }, async (_, index) => ({
          kind: "bytes" as const,
          bytes: await drawPlaceholder(call, { width, height, index, format }),
          mimeType: MIME_TYPE_OF_FORMAT[format],
          revisedPrompt: undefined,
        })),
      );
      call.signal.throwIfAborted();
      return { images, usage: undefined, warnings: [] };
    },
  };
}

function dimensionsOf(size: ProviderCall["size"]): [number, number] {
  if (size === undefined) return [1024, 1024];
  const [width, height] = size.split("x").map(Number) as [number, number];
  return [width, height];
}

interface Canvas {
  width: number;
  height: number;
  index: number;
  format: OutputFormat;
}

async function drawPlaceholder(call: ProviderCall, canvas: Canvas): Promise<Buffer> {
  const sharp = await loadSharp();
  const { width, height, index, format } = canvas;
  const digest = createHash("sha256").update(`${call.prompt}\u0000${index}`).digest();
  const hue = digest.readUInt16BE(0) % 360;
  const transparent = call.background === "transparent" && format !== "jpeg";
  const base = call.images[0];
  const svg = patternSvg({
    width,
    height,
    hue,
    prompt: call.prompt,
    index,
    transparent,
    overInput: base !== undefined,
  });

  let image = base
    ? sharp(base.bytes, { limitInputPixels: false })
        .resize(width, height, { fit: "cover" })
        .composite([{ input: Buffer.from(svg), blend: "over" }])
    : sharp(Buffer.from(svg));
  if (base) image = sharp(await image.png().toBuffer());

  switch (format) {
    case "jpeg":
      return image
        .flatten({ background: "#ffffff" })
        .jpeg({ quality: compression(call) })
        .toBuffer();
    case "webp":
      return image.webp({ quality: compression(call) }).toBuffer();
    default:
      return image.png({ compressionLevel: 6 }).toBuffer();
  }
}

function compression(call: ProviderCall): number {
  return Math.max(1, Math.min(100, call.outputCompression ?? 90));
}

interface Pattern {
  width: number;
  height: number;
  hue: number;
  prompt: string;
  index: number;
  transparent: boolean;
  /** Drawn over an input image (an edit): a light veil, so the input shows through. */
  overInput: boolean;
}

/** An SVG test pattern: a gradient in colours from the prompt's hash, the prompt, and a label. */
function patternSvg(pattern: Pattern): string {
  const { width, height, hue, transparent } = pattern;
  const opacity = pattern.overInput ? 0.2 : transparent ? 0.55 : 1;
  const fontSize = Math.max(8, Math.round(Math.min(width, height) / 18));
  const lines = wrap(pattern.prompt, Math.max(8, Math.floor(width / (fontSize * 0.6))), 4);
  const text = lines
    .map(
      (line, row) =>
        `<text x="50%" y="${40 + row * 12}%" text-anchor="middle" font-size="${fontSize}">${escapeXml(line)}</text>`,
    )
    .join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="hsl(${hue},70%,55%)" stop-opacity="${opacity}"/>
<stop offset="1" stop-color="hsl(${(hue + 140) % 360},70%,35%)" stop-opacity="${opacity}"/>
</linearGradient></defs>
<rect width="100%" height="100%" fill="url(#g)"/>
<g fill="#ffffff" font-family="sans-serif">${text}
<text x="50%" y="92%" text-anchor="middle" font-size="${Math.max(6, Math.round(fontSize * 0.6))}">image-hub placeholder #${pattern.index + 1} · not AI · ${width}x${height}</text>
</g></svg>`;
}

function wrap(text: string, width: number, maxLines: number): string[] {
  const words = text.replace(/\s+/g, " ").trim().split(" ");
  const lines: string[] = [];
  let line = "";
  for (const word of words) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = "";
      if (lines.length === maxLines) break;
    }
    line = line ? `${line} ${word}` : word.slice(0, width);
  }
  if (line && lines.length < maxLines) lines.push(line);
  return lines;
}

/** Text as SVG may carry it: markup escaped, and characters XML forbids (C0 controls) as `?`. */
function escapeXml(text: string): string {
  return (
    text
      // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "?")
      .replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`)
  );
}
