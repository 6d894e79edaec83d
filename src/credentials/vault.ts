/**
 * Encrypts provider API keys for storage (AES-256-GCM) under a key derived from the MASTER_KEY
 * setting. The database holds only envelopes `v1.<iv>.<tag>.<ciphertext>` (base64url parts); a
 * stolen database or backup without the setting gives away no key.
 *
 * @example
 * ```ts
 * const vault = createVault(process.env.MASTER_KEY);
 * const envelope = vault.encrypt("sk-live-…", credentialId); // stored
 * const apiKey = vault.decrypt(envelope, credentialId); // at load
 * ```
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from "node:crypto";
import { HubError } from "../errors.ts";

const VERSION = "v1";
const SALT = "image-hub/credentials/v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * scrypt, not HKDF: MASTER_KEY is a setting people type, often a passphrase rather than 256
 * random bits, and the threat is an offline guess against a stolen database (each guess is
 * checked by the GCM tag). scrypt makes each guess cost ~32 MiB and ~80 ms; the hub pays that
 * once per process. The salt is fixed because there is nowhere to keep one before the key
 * exists; the parameters are part of what `v1` means, so changing them needs a `v2`.
 */
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

export interface Vault {
  /** Whether a MASTER_KEY is set, so that `encrypt` can work. */
  readonly canStore: boolean;
  /**
   * Encrypts a secret with a fresh random IV. `context` (the credential id) is bound as
   * associated data, so an envelope copied onto another row does not decrypt there.
   * Throws `masterKeyRequired()` when no MASTER_KEY is set.
   */
  encrypt(plaintext: string, context?: string): string;
  /** Throws `CredentialDecryptError` on a wrong MASTER_KEY, a tampered or a malformed envelope. */
  decrypt(envelope: string, context?: string): string;
}

/** A stored secret that cannot be opened: a wrong MASTER_KEY, or the envelope was altered. */
export class CredentialDecryptError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CredentialDecryptError";
  }
}

/** 400 `master_key_required`: the hub will not store a provider key it cannot encrypt. */
export function masterKeyRequired(): HubError {
  return new HubError(
    "Storing provider credentials needs the MASTER_KEY setting (a long random secret) so they can be encrypted. Set MASTER_KEY and restart the hub, or configure the provider through its environment variables.",
    { status: 400, type: "invalid_request_error", code: "master_key_required" },
  );
}

export function createVault(masterKey: string | undefined): Vault {
  const key = masterKey ? scryptSync(masterKey, SALT, 32, SCRYPT) : undefined;
  return {
    canStore: key !== undefined,
    encrypt(plaintext, context = "") {
      if (!key) throw masterKeyRequired();
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(context, "utf8"));
      const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return [VERSION, iv, cipher.getAuthTag(), ciphertext]
        .map((part) => (typeof part === "string" ? part : part.toString("base64url")))
        .join(".");
    },
    decrypt(envelope, context = "") {
      if (!key) {
        throw new CredentialDecryptError(
          "Cannot decrypt a stored credential: MASTER_KEY is not set.",
        );
      }
      const [version, iv, tag, ciphertext, ...rest] = envelope.split(".");
      if (
        version !== VERSION ||
        iv === undefined ||
        tag === undefined ||
        ciphertext === undefined ||
        rest.length > 0
      ) {
        throw new CredentialDecryptError("Cannot decrypt a stored credential: not a v1 envelope.");
      }
      const ivBytes = Buffer.from(iv, "base64url");
      const tagBytes = Buffer.from(tag, "base64url");
      if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES) {
        throw new CredentialDecryptError("Cannot decrypt a stored credential: malformed envelope.");
      }
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, ivBytes, {
          authTagLength: TAG_BYTES,
        });
        decipher.setAAD(Buffer.from(context, "utf8"));
        decipher.setAuthTag(tagBytes);
        const plaintext = Buffer.concat([
          decipher.update(Buffer.from(ciphertext, "base64url")),
          decipher.final(),
        ]);
        return plaintext.toString("utf8");
      } catch (error) {
        throw new CredentialDecryptError(
          "Cannot decrypt a stored credential: MASTER_KEY is not the one it was stored under, or the stored data was altered.",
          { cause: error },
        );
      }
    },
  };
}

/** Prefixes every key of a provider shares: showing them tells people which kind of key it is. */
const PUBLIC_PREFIXES = ["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-", "AIza"];

/**
 * A form of a secret that people can tell apart from others but that gives nothing away: a
 * well-known prefix and at most the last 4 characters, and only those when the secret is long
 * enough that 4 characters are a small part of it.
 *
 * @example
 * maskSecret("sk-proj-abcdefghijklmnopqrstuvwxyz12"); // "sk-proj-…yz12"
 * maskSecret("short"); // "…"
 */
export function maskSecret(secret: string): string {
  const prefix = PUBLIC_PREFIXES.find((candidate) => secret.startsWith(candidate)) ?? "";
  const rest = secret.length - prefix.length;
  // 16 characters after the prefix keep at least 12 hidden, whatever the key looks like.
  if (rest < 16) return "…";
  return `${prefix}…${secret.slice(-4)}`;
}
