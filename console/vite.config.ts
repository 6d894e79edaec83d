/**
 * The console's build: a static bundle in console/dist that the hub serves at `/`. Asset paths
 * are relative, so the same build works when a proxy mounts the hub under a path prefix.
 */
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "./",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Everything the console needs ships with it: no CDN, no web fonts.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 600,
  },
});
