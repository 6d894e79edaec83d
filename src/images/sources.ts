/**
 * Input images as a request carries them (text from JSON, bytes from multipart) to checked
 * images: text goes through `loadInputImages` (URL, data URL or base64), bytes straight to
 * the decode checks. Order is kept, so `image[1]` in an error means the second image sent.
 */
import type { SafeFetcher } from "../net/safe-fetch.ts";
import type { InputImage } from "../providers/types.ts";
import { decodeImageBytes, loadInputImages } from "./inputs.ts";
import type { ImageSource } from "./plan.ts";

export function createImageSourceLoader(options: {
  fetcher: Pick<SafeFetcher, "fetch">;
  maxBytes: number;
  maxPixels: number;
}) {
  return async function loadImageSources(
    sources: ImageSource[],
    param: string,
    signal: AbortSignal,
  ): Promise<InputImage[]> {
    if (sources.length === 0) return [];
    // The first failure cancels the other loads: no reason to keep fetching for a lost request.
    const failed = new AbortController();
    const shared = AbortSignal.any([signal, failed.signal]);
    const paramOf = (index: number) => (sources.length > 1 ? `${param}[${index}]` : param);
    const loadOne = (source: ImageSource, index: number): Promise<InputImage> =>
      typeof source === "string"
        ? loadInputImages([source], { ...options, param: paramOf(index), signal: shared }).then(
            (loaded) => loaded[0] as InputImage,
          )
        : decodeImageBytes(source, { maxPixels: options.maxPixels, param: paramOf(index) });
    return Promise.all(
      sources.map((source, index) =>
        loadOne(source, index).catch((error: unknown) => {
          failed.abort(error);
          throw error;
        }),
      ),
    );
  };
}
