/**
 * The several-instance set-up a user starts with one command (deploy/compose.yaml), checked where
 * no Docker engine runs: its services, that every hub has the settings instances must share,
 * that each setting it uses is one the hub reads, and that the proxy sends to every hub.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { parse } from "yaml";

const compose = parse(
  await readFile(new URL("../../deploy/compose.yaml", import.meta.url), "utf8"),
) as { services: Record<string, { environment?: Record<string, string>; build?: string }> };
const nginx = await readFile(new URL("../../deploy/nginx.conf", import.meta.url), "utf8");
const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
const hubs = Object.entries(compose.services).filter(([, service]) => service.build === "..");

describe("deploy/compose.yaml", () => {
  it("runs two hubs, a proxy, PostgreSQL, Redis and MinIO", () => {
    assert.deepEqual(
      hubs.map(([name]) => name),
      ["hub-1", "hub-2"],
    );
    for (const name of ["proxy", "postgres", "redis", "minio", "minio-bucket"]) {
      assert.ok(compose.services[name], name);
    }
  });

  it("gives every hub the same shared settings", () => {
    const shared = [
      "DATABASE_URL",
      "REDIS_URL",
      "BLOB_STORE_URL",
      "URL_SIGNING_SECRET",
      "MASTER_KEY",
      "ADMIN_KEY",
      "PUBLIC_URL",
    ];
    const [, first] = hubs[0] ?? [];
    for (const [name, service] of hubs) {
      for (const setting of shared) {
        assert.ok(service.environment?.[setting], `${name} sets ${setting}`);
        assert.equal(service.environment?.[setting], first?.environment?.[setting], setting);
      }
    }
  });

  it("uses only settings the README documents", () => {
    for (const [, service] of hubs) {
      for (const setting of Object.keys(service.environment ?? {})) {
        assert.ok(readme.includes(`\`${setting}\``), `${setting} is documented`);
      }
    }
  });

  it("has the proxy send to every hub, with long timeouts and room for edits", () => {
    for (const [name] of hubs) assert.match(nginx, new RegExp(`server ${name}:8080`));
    assert.match(nginx, /proxy_read_timeout 330s/);
    assert.match(nginx, /client_max_body_size 64m/);
  });
});
