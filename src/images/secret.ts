/**
 * The key that signs hosted-image URLs. One instance keeps it in its data directory so that
 * URLs it handed out still work after a restart; several instances behind one PUBLIC_URL must
 * share it, which is what `URL_SIGNING_SECRET` (read by config) is for.
 */
import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const SIGNING_SECRET_FILE = "url-signing.key";
const SECRET_BYTES = 32;

/**
 * Reads `<dataDir>/url-signing.key`, creating it (mode 0600, 32 random bytes as base64url text)
 * on first start. A file that is there but unreadable as a key is an error, not replaced: the
 * operator may have put it there.
 *
 * @example
 * const secret = config.urlSigningSecret ?? (await loadOrCreateSigningSecret(config.dataDir));
 */
export async function loadOrCreateSigningSecret(dataDir: string): Promise<Buffer> {
  const file = join(dataDir, SIGNING_SECRET_FILE);
  const existing = await readSecretFile(file);
  if (existing !== undefined) return existing;

  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(SECRET_BYTES);
  // Written aside and hard-linked into place: `link` never replaces an existing file, so when
  // two processes start at once both end up with the one key that won, and neither can read a
  // half-written file.
  const temporary = join(dataDir, `.${SIGNING_SECRET_FILE}.${randomBytes(6).toString("hex")}`);
  try {
    await writeFile(temporary, `${secret.toString("base64url")}\n`, { flag: "wx", mode: 0o600 });
    await link(temporary, file);
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const winner = await readSecretFile(file);
    if (winner === undefined) throw error;
    return winner;
  } finally {
    await rm(temporary, { force: true });
  }
}

async function readSecretFile(file: string): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const encoded = text.trim();
  const secret = Buffer.from(encoded, "base64url");
  if (!/^[A-Za-z0-9_-]+$/.test(encoded) || secret.length < SECRET_BYTES) {
    throw new Error(
      `${file} does not hold a URL signing key (${SECRET_BYTES} or more bytes as base64url); delete it to have a new one made.`,
    );
  }
  return secret;
}
