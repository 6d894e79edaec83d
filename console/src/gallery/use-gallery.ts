/**
 * The hosted images, newest first, a page at a time. `before` is in ms but `created_at` only in
 * seconds, so `before` = the last image's second would skip its older neighbours in that second.
 * The next page asks for everything before the end of that second instead, with room for the
 * images of that second already shown (they come first, the hub's order being total), and
 * drops those.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "../api.ts";

export interface GalleryImage {
  id: string;
  url: string;
  prompt: string;
  model: string;
  size: string;
  cost: number;
  key_id: string;
  record_id: string;
  created_at: number;
  expires_at: number;
}

export interface GalleryFilters {
  model: string;
  key: string;
}

const PAGE = 24;
/** The most the hub lists at once. */
const MAX_LIMIT = 200;

export function useGallery(api: Api, filters: GalleryFilters) {
  const [images, setImages] = useState<GalleryImage[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [more, setMore] = useState(false);
  // Answers for filters no longer shown are dropped.
  const generation = useRef(0);

  const fetchPage = async (limit: number, before?: number) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (filters.model) query.set("model", filters.model);
    if (filters.key) query.set("key", filters.key);
    if (before !== undefined) query.set("before", String(before));
    return (await api.call<{ data: GalleryImage[] }>("GET", `/api/images?${query}`)).data;
  };

  const load = async (shown: GalleryImage[]) => {
    const mine = generation.current;
    setLoading(true);
    setError(null);
    try {
      const last = shown.at(-1);
      const again = last ? shown.filter((image) => image.created_at === last.created_at) : [];
      const limit = Math.min(MAX_LIMIT, PAGE + again.length);
      const page = await fetchPage(limit, last && (last.created_at + 1) * 1000);
      const seen = new Set(again.map((image) => image.id));
      if (mine !== generation.current) return;
      setImages([...shown, ...page.filter((image) => !seen.has(image.id))]);
      setMore(page.length === limit);
    } catch (caught) {
      if (mine === generation.current) setError(caught);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  };

  useEffect(() => {
    generation.current += 1;
    setImages(null);
    load([]);
  }, [api, filters.model, filters.key]);

  return { images, error, loading, more, loadMore: () => load(images ?? []) };
}
