/**
 * The Gallery: the images the hub still hosts, newest first (a client key sees its own), with
 * filters kept in the address so a link shares them. Click a picture to see it large.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import { ErrorNotice, PageHeader } from "../components.tsx";
import { Filters } from "../gallery/filters.tsx";
import { costText, GalleryCard } from "../gallery/gallery-card.tsx";
import { type GalleryFilters, useGallery } from "../gallery/use-gallery.ts";
import { ImageDialog, type ShownImage } from "../playground/image-dialog.tsx";
import { hrefOf, queryOf } from "../router.ts";
import type { Session } from "../session.ts";
import "../gallery/gallery.css";

interface KeyRow {
  id: string;
  name: string;
}

export function GalleryPage({ session }: { session: Session }) {
  const { api, me } = session;
  const admin = me.role === "admin";
  const [filters, setFilters] = useState<GalleryFilters>(() => {
    const query = queryOf();
    return { model: query.get("model") ?? "", key: admin ? (query.get("key") ?? "") : "" };
  });
  const [catalog, setCatalog] = useState<string[]>([]);
  const [keys, setKeys] = useState<KeyRow[] | null>(null);
  const [shown, setShown] = useState<ShownImage | null>(null);
  const [now, setNow] = useState(Date.now);
  const { images, error, loading, more, loadMore } = useGallery(api, filters);

  useEffect(() => {
    api
      .call<{ data: { id: string }[] }>("GET", "/api/models")
      .then((list) => setCatalog(list.data.map((model) => model.id)))
      .catch(() => undefined);
    if (admin) {
      api
        .call<{ data: KeyRow[] }>("GET", "/api/admin/keys")
        .then((list) => setKeys(list.data))
        .catch(() => setKeys([]));
    }
    // "expires in N min" stays true while the page is open.
    const timer = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(timer);
  }, [api, admin]);

  // The admin key of the environment is not in the key list; its images are still its own.
  const keyList = useMemo(() => {
    if (!admin) return null;
    const list = keys ?? [];
    return list.some((key) => key.id === me.id) ? list : [{ id: me.id, name: me.name }, ...list];
  }, [admin, keys, me]);
  const keyName = (id: string) => keyList?.find((key) => key.id === id)?.name ?? id;
  // Images of models this key no longer sees, and a model from a shared link, stay choosable.
  const models = [
    ...new Set([...catalog, ...(images ?? []).map((image) => image.model), filters.model]),
  ].filter(Boolean);

  const change = (next: GalleryFilters) => {
    const query: Record<string, string> = {};
    if (next.model) query.model = next.model;
    if (next.key) query.key = next.key;
    history.replaceState(history.state, "", hrefOf("gallery", query));
    setFilters(next);
  };
  const filtered = filters.model !== "" || filters.key !== "";

  return (
    <>
      <PageHeader title="Gallery" />
      <Filters filters={filters} models={models} keys={keyList} onChange={change} />
      <ErrorNotice error={error} />
      {images === null && !error && (
        <p class="muted" aria-busy="true">
          Loading images…
        </p>
      )}
      {images?.length === 0 && (
        <p class="muted gl-empty">
          {filtered ? "No hosted images match these filters." : "No hosted images yet: "}
          {!filtered && <a href={hrefOf("playground")}>make some in the Playground</a>}
          {!filtered && ". Images stay here until their URLs expire."}
        </p>
      )}
      {images && images.length > 0 && (
        <div class="gl-grid">
          {images.map((image) => (
            <GalleryCard
              key={image.id}
              image={image}
              keyName={admin ? keyName(image.key_id) : undefined}
              now={now}
              onOpen={() =>
                setShown({
                  url: image.url,
                  prompt: image.prompt,
                  details: `${image.model} · ${image.size} · ${costText(image.cost)}`,
                })
              }
            />
          ))}
        </div>
      )}
      {more && (
        <div class="gl-more">
          <button type="button" onClick={loadMore} disabled={loading}>
            {loading ? "Loading…" : "Load more"}
          </button>
        </div>
      )}
      <ImageDialog image={shown} onClose={() => setShown(null)} />
    </>
  );
}
