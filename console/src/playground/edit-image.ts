/**
 * Images to edit and their masks. The mask follows OpenAI's convention: a PNG the size of the
 * image, fully transparent (alpha 0) where the image should change and opaque elsewhere.
 */
import type { EditImage } from "./types.ts";

export async function loadEditImage(blob: Blob, name: string): Promise<EditImage> {
  if (!blob.type.startsWith("image/")) throw new Error(`${name} is not an image.`);
  const bitmap = await createImageBitmap(blob).catch(() => {
    throw new Error(`${name} could not be read as an image.`);
  });
  const { width, height } = bitmap;
  bitmap.close();
  return { blob, name, url: URL.createObjectURL(blob), width, height };
}

/** A result's picture, fetched from its signed URL (no key needed: the URL is the capability). */
export async function imageFromUrl(url: string): Promise<EditImage> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`The image could not be fetched (HTTP ${response.status}).`);
  const name = new URL(url, location.href).pathname.split("/").pop() || "image.png";
  return loadEditImage(await response.blob(), name);
}

/** The painted strokes (any opaque pixel) cut out of an opaque sheet. */
export function maskOf(painted: HTMLCanvasElement): Promise<Blob> {
  const sheet = document.createElement("canvas");
  sheet.width = painted.width;
  sheet.height = painted.height;
  const context = sheet.getContext("2d");
  if (!context) return Promise.reject(new Error("This browser cannot draw a mask."));
  context.fillStyle = "#000";
  context.fillRect(0, 0, sheet.width, sheet.height);
  context.globalCompositeOperation = "destination-out";
  context.drawImage(painted, 0, 0);
  return new Promise((resolve, reject) =>
    sheet.toBlob(
      (blob) => (blob ? resolve(blob) : reject(new Error("The mask could not be made."))),
      "image/png",
    ),
  );
}

/** The first image file among dropped or pasted files, if any. */
export function imageFileOf(files: FileList | null | undefined): File | undefined {
  return [...(files ?? [])].find((file) => file.type.startsWith("image/"));
}
