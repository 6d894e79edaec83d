import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CredentialDecryptError, createVault, maskSecret } from "../../src/credentials/vault.ts";
import { HubError } from "../../src/errors.ts";

const SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
// Derivation is deliberately slow (scrypt): build each vault once.
const vault = createVault("correct horse battery staple");
const otherVault = createVault("another master key entirely");

describe("createVault", () => {
  it("round-trips a secret", () => {
    const envelope = vault.encrypt(SECRET);
    assert.equal(vault.decrypt(envelope), SECRET);
    assert.equal(vault.canStore, true);
  });

  it("writes a v1 envelope that does not contain the secret", () => {
    const envelope = vault.encrypt(SECRET);
    const parts = envelope.split(".");
    assert.equal(parts.length, 4);
    assert.equal(parts[0], "v1");
    assert.equal(Buffer.from(parts[1] ?? "", "base64url").length, 12);
    assert.equal(Buffer.from(parts[2] ?? "", "base64url").length, 16);
    for (const part of parts) assert.match(part, /^[A-Za-z0-9_-]+$/);
    assert.ok(!envelope.includes(SECRET));
    assert.ok(!envelope.includes(Buffer.from(SECRET).toString("base64url")));
  });

  it("uses a fresh IV for each secret", () => {
    const envelopes = Array.from({ length: 20 }, () => vault.encrypt(SECRET));
    const ivs = new Set(envelopes.map((envelope) => envelope.split(".")[1]));
    assert.equal(ivs.size, envelopes.length);
    assert.equal(new Set(envelopes).size, envelopes.length);
  });

  it("refuses to decrypt under another master key", () => {
    const envelope = vault.encrypt(SECRET);
    assert.throws(
      () => otherVault.decrypt(envelope),
      (error: unknown) =>
        error instanceof CredentialDecryptError &&
        /MASTER_KEY/.test(error.message) &&
        !error.message.includes(SECRET),
    );
  });

  it("detects a tampered envelope", () => {
    const [version, iv, tag, ciphertext] = vault.encrypt(SECRET).split(".") as [
      string,
      string,
      string,
      string,
    ];
    const flipped = Buffer.from(ciphertext, "base64url");
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    const tampered = [
      [version, iv, tag, flipped.toString("base64url")],
      [version, Buffer.alloc(12).toString("base64url"), tag, ciphertext],
      [version, iv, Buffer.alloc(16).toString("base64url"), ciphertext],
      ["v2", iv, tag, ciphertext],
      [version, iv, tag],
    ].map((parts) => parts.join("."));
    for (const envelope of [...tampered, "", "not an envelope"]) {
      assert.throws(() => vault.decrypt(envelope), CredentialDecryptError, envelope);
    }
  });

  it("binds the envelope to its context (the credential id)", () => {
    const envelope = vault.encrypt(SECRET, "cred_a");
    assert.equal(vault.decrypt(envelope, "cred_a"), SECRET);
    assert.throws(() => vault.decrypt(envelope, "cred_b"), CredentialDecryptError);
  });

  it("refuses to store without a master key, saying to set MASTER_KEY", () => {
    for (const masterKey of [undefined, ""]) {
      const none = createVault(masterKey);
      assert.equal(none.canStore, false);
      assert.throws(
        () => none.encrypt(SECRET),
        (error: unknown) =>
          error instanceof HubError &&
          error.status === 400 &&
          error.code === "master_key_required" &&
          error.message.includes("MASTER_KEY"),
      );
      assert.throws(() => none.decrypt(vault.encrypt(SECRET)), CredentialDecryptError);
    }
  });
});

describe("maskSecret", () => {
  it("shows a known prefix and the last 4 characters at most", () => {
    assert.equal(maskSecret("sk-abcdefghijklmnopqrstuvwxab12"), "sk-…ab12");
    assert.equal(maskSecret(SECRET), "sk-proj-…6789");
    assert.equal(maskSecret("AIzaSyA1234567890abcdefghijklmnopq"), "AIza…nopq");
    assert.equal(maskSecret("0123456789abcdefghijWXYZ"), "…WXYZ");
  });

  it("never shows more than 4 characters of what follows the prefix", () => {
    for (const secret of [SECRET, "x".repeat(40), "sk-0123456789abcdef", "abcdefghijklmnop"]) {
      const masked = maskSecret(secret);
      const [prefix, tail = ""] = masked.split("…");
      assert.ok(secret.startsWith(prefix ?? ""));
      assert.ok(tail.length <= 4, masked);
      assert.ok(secret.endsWith(tail));
    }
  });

  it("hides short secrets entirely", () => {
    for (const secret of ["", "abc", "sk-short", "sk-0123456789abcd", "0123456789abcde"]) {
      assert.equal(maskSecret(secret), "…", secret);
    }
  });
});
