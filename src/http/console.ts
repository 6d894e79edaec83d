/**
 * The web console: the Vite build in console/dist, served by the hub itself at `/` and at each
 * page's own path (`/keys` loaded directly works), so the console needs no other service and
 * nothing from the internet. It is a client of the public API like any script; this file only
 * serves its files.
 *
 * The page is told where the hub lives below its origin (PUBLIC_URL's path, for a hub mounted
 * under a prefix), and may load images from PUBLIC_URL's origin (the signed image URLs), which
 * is not the page's own when the browser uses another name for the host.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply } from "fastify";

/** The console's pages: each path serves the same document, which shows the page it names. */
export const CONSOLE_PAGES = ["playground", "gallery", "keys", "usage", "models"] as const;

const DEFAULT_DIST = path.resolve(import.meta.dirname, "../../console/dist");

export async function registerConsole(
  app: FastifyInstance,
  options: { publicUrl: string; distDir?: string; imagesFromAnywhere?: boolean },
): Promise<void> {
  const dist = options.distDir ?? DEFAULT_DIST;
  const publicUrl = new URL(options.publicUrl);
  const base = publicUrl.pathname.endsWith("/") ? publicUrl.pathname : `${publicUrl.pathname}/`;
  const headers = securityHeaders(
    options.imagesFromAnywhere ? `${publicUrl.origin} https: http:` : publicUrl.origin,
  );

  // Hashed file names: a build never changes a file in place, so browsers may keep them.
  await app.register(fastifyStatic, {
    root: path.join(dist, "assets"),
    prefix: "/assets/",
    immutable: true,
    maxAge: "365d",
    index: false,
    wildcard: true,
    schemaHide: true,
  });

  let page: string | undefined;
  const document = async (): Promise<string | undefined> => {
    if (page !== undefined) return page;
    const built = await readFile(path.join(dist, "index.html"), "utf8").catch(() => undefined);
    // Kept once found; until then every request looks again (a build may finish after the start).
    page = built?.replace(
      /<meta name="image-hub-base" content="[^"]*"/,
      `<meta name="image-hub-base" content="${escapeAttribute(base)}"`,
    );
    return page;
  };

  const sendPage = async (reply: FastifyReply) => {
    const html = await document();
    reply.headers(headers).header("cache-control", "no-cache");
    if (html === undefined) {
      return reply.code(503).type("text/html; charset=utf-8").send(NOT_BUILT);
    }
    return reply.type("text/html; charset=utf-8").send(html);
  };

  const hidden = { schema: { hide: true } };
  app.get("/", hidden, (_request, reply) => sendPage(reply));
  for (const name of CONSOLE_PAGES) {
    app.get(`/${name}`, hidden, (_request, reply) => sendPage(reply));
  }
  for (const name of ["/favicon.svg", "/favicon.ico"]) {
    app.get(name, hidden, async (_request, reply) => {
      const icon = await readFile(path.join(dist, "favicon.svg")).catch(() => undefined);
      if (!icon) return reply.code(404).send();
      return reply
        .type("image/svg+xml")
        .header("cache-control", "public, max-age=86400")
        .send(icon);
    });
  }
}

/**
 * Scripts and styles from the hub only; images also from PUBLIC_URL's origin (or any, when the
 * image URLs are a store's own) and as blob: and data: URLs (pictures dropped into the page,
 * masks drawn in it). No referrer leaves the page:
 * a signed image URL is a capability.
 */
function securityHeaders(imageOrigins: string): Record<string, string> {
  const policy = [
    "default-src 'self'",
    `img-src 'self' ${imageOrigins} data: blob:`,
    `connect-src 'self' ${imageOrigins}`,
    "style-src 'self' 'unsafe-inline'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
  return {
    "content-security-policy": policy,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  };
}

function escapeAttribute(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>image-hub</title>
<p>The console is not built. Run <code>npm run build:console</code> (or <code>npm start</code>,
which builds it) and reload. The API works without it: see <a href="./docs">/docs</a>.</p>`;
