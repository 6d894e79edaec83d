/**
 * Builds the web console (console/ → console/dist) when its sources changed since the last
 * build, so `npm ci` (prepare) and `npm start` (prestart) keep it current without anyone running
 * a build by hand, and a start with nothing changed costs a hash of a few files.
 *
 *   node scripts/build-console.ts           build if stale
 *   node scripts/build-console.ts --force   build anyway
 *   node scripts/build-console.ts --warn-only   a failed build warns and exits 0 (`npm start`:
 *                                               the API still starts; `/` says what is missing)
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const consoleDir = path.join(root, "console");
export const consoleDist = path.join(consoleDir, "dist");
const stampFile = path.join(consoleDist, ".sources-hash");

/** Everything the bundle is made of: the console's own files and the locked package versions. */
async function sourcesHash(): Promise<string> {
  const hash = createHash("sha256");
  const files = [
    path.join(root, "package-lock.json"),
    ...(await listFiles(consoleDir, (name) => name !== "dist" && name !== "node_modules")),
  ].sort();
  for (const file of files) {
    hash.update(path.relative(root, file));
    hash.update(await readFile(file));
  }
  return hash.digest("hex");
}

async function listFiles(directory: string, keep: (name: string) => boolean): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true });
  const nested = await Promise.all(
    entries
      .filter((entry) => keep(entry.name))
      .map((entry) => {
        const full = path.join(directory, entry.name);
        return entry.isDirectory() ? listFiles(full, keep) : [full];
      }),
  );
  return nested.flat();
}

/** Builds unless the last build was made from these very sources; says which it did. */
export async function ensureConsoleBuilt(options: { force?: boolean } = {}): Promise<boolean> {
  if (!existsSync(consoleDir)) return false;
  const wanted = await sourcesHash();
  const built = await readFile(stampFile, "utf8").catch(() => "");
  if (!options.force && built === wanted && existsSync(path.join(consoleDist, "index.html"))) {
    return false;
  }
  // Loaded only when a build is due: a start with a current build never loads the bundler.
  const { build } = await import("vite");
  await build({ configFile: path.join(consoleDir, "vite.config.ts"), logLevel: "warn" });
  await writeFile(stampFile, wanted);
  return true;
}

if (import.meta.main) {
  const started = performance.now();
  try {
    const built = await ensureConsoleBuilt({ force: process.argv.includes("--force") });
    if (built) {
      console.log(`console built in ${Math.round(performance.now() - started)} ms (console/dist)`);
    }
  } catch (error) {
    console.error("could not build the console:", error instanceof Error ? error.message : error);
    if (!process.argv.includes("--warn-only")) process.exitCode = 1;
  }
}
