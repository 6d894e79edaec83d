/**
 * An image made by a retired model's successor, brought to what the client was promised: the
 * size it asked for (the successor made the nearest size it could, at the same aspect ratio)
 * and the format it asked for. Resizing covers the asked box and crops what little is over, so
 * nothing is stretched when the successor's ratio is a few pixels off.
 */

import { MIME_TYPE_OF_FORMAT, sniffImageType } from "../image-formats.ts";
import type { ImageMimeType, OutputFormat } from "../providers/types.ts";
import { loadSharp } from "../sharp.ts";

export interface DeliverySpec {
  size: { width: number; height: number } | undefined;
  format: OutputFormat;
}

/**
 * @example
 * const { bytes } = await deliverAs(png816, { size: { width: 256, height: 256 }, format: "png" });
 */
export async function deliverAs(
  bytes: Buffer,
  wanted: DeliverySpec,
): Promise<{ bytes: Buffer; mimeType: ImageMimeType }> {
  const sharp = await loadSharp();
  const mimeType = MIME_TYPE_OF_FORMAT[wanted.format];
  if (!wanted.size && sniffImageType(bytes) === mimeType) return { bytes, mimeType };
  let image = sharp(bytes);
  if (wanted.size) {
    image = image.resize(wanted.size.width, wanted.size.height, { fit: "cover" });
  }
  const encoded =
    wanted.format === "jpeg"
      ? image.jpeg({ quality: 92 })
      : wanted.format === "webp"
        ? image.webp({ quality: 92 })
        : image.png();
  return { bytes: await encoded.toBuffer(), mimeType };
}
