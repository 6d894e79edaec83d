/**
 * Pages are real paths (`/keys` loads directly; the hub serves the console for each), and the
 * navigation is real links: a click on a link inside the console changes the page without a
 * reload, anything else (a new tab, a download, another origin) is left to the browser.
 */
import { useEffect, useState } from "preact/hooks";
import { hubBase } from "./api.ts";

export const PAGES = ["playground", "gallery", "keys", "usage", "models"] as const;
export type Page = (typeof PAGES)[number];

const base = hubBase.endsWith("/") ? hubBase : `${hubBase}/`;

export function hrefOf(page: Page, query?: Record<string, string>): string {
  const search = query ? `?${new URLSearchParams(query)}` : "";
  return `${base}${page}${search}`;
}

export function currentPage(): Page {
  const below = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : "";
  const first = below.split("/")[0] ?? "";
  return (PAGES as readonly string[]).includes(first) ? (first as Page) : "playground";
}

export function navigate(href: string): void {
  history.pushState(null, "", href);
  dispatchEvent(new PopStateEvent("popstate"));
}

/** The page shown now, following links and the back button. */
export function usePage(): Page {
  const [page, setPage] = useState(currentPage);
  useEffect(() => {
    const onPop = () => setPage(currentPage());
    const onClick = (event: MouseEvent) => {
      if (event.defaultPrevented || event.button !== 0) return;
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      const link = (event.target as Element | null)?.closest?.("a");
      if (!link || link.target || link.hasAttribute("download")) return;
      const url = new URL(link.href, location.href);
      if (url.origin !== location.origin || !url.pathname.startsWith(base)) return;
      const first = url.pathname.slice(base.length).split("/")[0] ?? "";
      if (first !== "" && !(PAGES as readonly string[]).includes(first)) return;
      event.preventDefault();
      navigate(url.pathname + url.search);
    };
    addEventListener("popstate", onPop);
    document.addEventListener("click", onClick);
    return () => {
      removeEventListener("popstate", onPop);
      document.removeEventListener("click", onClick);
    };
  }, []);
  return page;
}

/** The page's query string as an object, for filters kept in the address (shareable links). */
export function queryOf(): URLSearchParams {
  return new URLSearchParams(location.search);
}
