/**
 * /openapi.json as a client's tooling reads it: a valid OpenAPI 3.1 document (swagger-parser's
 * check), naming every route the hub serves and every status the image, hosted-image and admin
 * routes answer; schemas given for the document only leave the checks as they were; and the API
 * reference page at /docs, served whole by the hub itself.
 */
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { after, before, describe, it } from "node:test";
import SwaggerParser from "@apidevtools/swagger-parser";
import type { FastifyInstance, RouteOptions } from "fastify";
import { startTestHub, type TestHub } from "../helpers/hub.ts";

interface Schema {
  type?: string;
  format?: string;
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
}

interface Operation {
  parameters?: { name: string; in: string; required?: boolean }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<
    string,
    { content?: Record<string, { schema: Schema }>; headers?: Record<string, unknown> }
  >;
}

interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

interface ServedRoute {
  method: string;
  url: string;
  hidden: boolean;
}

const IMAGE_PATHS = [
  "/api/images/generations",
  "/v1/images/generations",
  "/api/images/edits",
  "/v1/images/edits",
];
const IMAGE_STATUSES = [
  "200",
  "400",
  "401",
  "402",
  "403",
  "404",
  "409",
  "410",
  "413",
  "415",
  "429",
  "431",
  "500",
  "502",
  "503",
  "504",
];
/** The admin routes of http/admin*.ts (prices are documented by their own file). */
const ADMIN_PREFIXES = [
  "/api/admin/keys",
  "/api/admin/credentials",
  "/api/admin/routes",
  "/api/admin/models",
];

let hub: TestHub;
let document: OpenApiDocument;
const routes: ServedRoute[] = [];

/**
 * Fastify announces each new instance on its `fastify.initialization` channel, before any
 * route is added: the hook sees every route the hub registers, hidden ones too.
 */
function recordRoutes(message: unknown): void {
  const { fastify } = message as { fastify: FastifyInstance };
  fastify.addHook("onRoute", (route: RouteOptions) => {
    for (const method of [route.method].flat()) {
      routes.push({ method, url: route.url, hidden: route.schema?.hide === true });
    }
  });
}

before(async () => {
  subscribe("fastify.initialization", recordRoutes);
  try {
    hub = await startTestHub();
  } finally {
    unsubscribe("fastify.initialization", recordRoutes);
  }
  document = (await (await fetch(`${hub.url}/openapi.json`)).json()) as OpenApiDocument;
});

after(async () => {
  await hub.close();
});

/** A Fastify route URL as the document names it: `:name` is `{name}`, a wildcard `{*}`. */
function documentPath(url: string): string {
  return url.replace(/:(\w+)/g, "{$1}").replace(/\*$/, "{*}");
}

function operation(path: string, method: string): Operation {
  const found = document.paths[path]?.[method];
  assert.ok(found, `${method.toUpperCase()} ${path} is documented`);
  return found;
}

function assertErrorShape(response: Operation["responses"][string], where: string): void {
  const schema = response.content?.["application/json"]?.schema;
  assert.deepEqual(schema?.required, ["error"], `${where}: the error shape`);
  assert.deepEqual(schema?.properties?.error?.required, ["message", "type", "param", "code"]);
}

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1", async () => {
    assert.match(document.openapi, /^3\.1\./);
    // It dereferences in place: a copy keeps the document as served for the other tests.
    await SwaggerParser.validate(structuredClone(document) as never);
  });

  it("names every route the hub serves, and no other", () => {
    const served = routes.filter((route) => route.method !== "HEAD");
    assert.ok(served.length > 30, `routes were recorded (${served.length})`);
    const shown = served.filter((route) => !route.hidden);
    for (const route of shown) {
      operation(documentPath(route.url), route.method.toLowerCase());
    }
    // Hidden: the probes, the documentation itself, and the console's page and files.
    const consoleFiles =
      /^\/(|playground|gallery|keys|usage|models|assets\/.*|favicon\.(svg|ico))$/;
    for (const route of served.filter((route) => route.hidden)) {
      assert.ok(
        /^\/(healthz|openapi\.json|docs)(\/|$)/.test(route.url) || consoleFiles.test(route.url),
        `${route.url} is hidden`,
      );
      assert.equal(document.paths[documentPath(route.url)], undefined);
    }
    const documented = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const servedNames = new Set(shown.map((route) => `${route.method} ${documentPath(route.url)}`));
    assert.deepEqual(
      documented.filter((name) => !servedNames.has(name)),
      [],
      "every documented operation is served",
    );
  });

  it("lists every status of the image routes, errors in the error shape", () => {
    for (const path of IMAGE_PATHS) {
      const { responses } = operation(path, "post");
      assert.deepEqual(Object.keys(responses).sort(), IMAGE_STATUSES, path);
      for (const status of IMAGE_STATUSES.filter((status) => status !== "200")) {
        const response = responses[status];
        assert.ok(response);
        assertErrorShape(response, `${path} ${status}`);
      }
      assert.ok(responses["429"]?.headers?.["Retry-After"], `${path} 429 says Retry-After`);
      assert.ok(responses["503"]?.headers?.["Retry-After"], `${path} 503 says Retry-After`);
    }
  });

  it("describes the image reply: b64_json or url items, usage, and the hub's headers", () => {
    for (const path of IMAGE_PATHS) {
      const success = operation(path, "post").responses["200"];
      const schema = success?.content?.["application/json"]?.schema;
      const item = schema?.properties?.data?.items?.properties;
      assert.ok(item?.b64_json && item.url, `${path}: b64_json and url items`);
      assert.ok(schema?.properties?.usage?.properties?.total_tokens, `${path}: usage`);
      assert.deepEqual(Object.keys(success?.headers ?? {}).sort(), [
        "Idempotent-Replayed",
        "X-Image-Hub-Cost",
        "X-Image-Hub-Idempotency",
        "X-Image-Hub-Model",
        "X-Image-Hub-Partial",
        "X-Image-Hub-Record-Id",
        "X-Image-Hub-Warnings",
      ]);
    }
  });

  it("describes the edits body as a multipart form and as JSON", () => {
    const generation = operation("/v1/images/generations", "post").requestBody?.content[
      "application/json"
    ]?.schema;
    const textFields = Object.keys(generation?.properties ?? {}).filter(
      (name) => name !== "image" && name !== "mask",
    );
    for (const path of ["/api/images/edits", "/v1/images/edits"]) {
      const content = operation(path, "post").requestBody?.content ?? {};
      const form = content["multipart/form-data"]?.schema;
      assert.ok(form?.properties, `${path}: a multipart form`);
      for (const name of ["image", "image[]"]) {
        assert.equal(form.properties[name]?.type, "array");
        assert.equal(form.properties[name]?.items?.format, "binary", `${path}: '${name}' files`);
      }
      assert.equal(form.properties.mask?.format, "binary");
      for (const name of textFields) assert.ok(form.properties[name], `${path}: form '${name}'`);
      assert.deepEqual(form.required, ["prompt"]);
      const json = content["application/json"]?.schema;
      assert.deepEqual([...(json?.required ?? [])].sort(), ["image", "prompt"], `${path}: JSON`);
    }
  });

  it("describes the hosted-image route: its link, the image and its errors", () => {
    const hosted = operation("/files/images/{name}", "get");
    const parameters = new Map(hosted.parameters?.map((parameter) => [parameter.name, parameter]));
    assert.equal(parameters.get("name")?.in, "path");
    for (const name of ["expires", "signature"]) {
      assert.equal(parameters.get(name)?.in, "query", name);
      assert.equal(parameters.get(name)?.required, true, name);
    }
    const content = hosted.responses["200"]?.content ?? {};
    assert.deepEqual(Object.keys(content).sort(), ["image/jpeg", "image/png", "image/webp"]);
    for (const media of Object.values(content)) assert.equal(media.schema.format, "binary");
    for (const status of ["403", "404", "410"]) {
      const response = hosted.responses[status];
      assert.ok(response, `hosted image ${status}`);
      assertErrorShape(response, `hosted image ${status}`);
    }
  });

  it("lists the statuses of the admin routes", () => {
    for (const [path, methods] of Object.entries(document.paths)) {
      if (!ADMIN_PREFIXES.some((prefix) => path.startsWith(prefix))) continue;
      for (const [method, { responses, requestBody }] of Object.entries(methods)) {
        const name = `${method.toUpperCase()} ${path}`;
        const statuses = Object.keys(responses);
        for (const status of ["401", "403", "429"]) {
          assert.ok(statuses.includes(status), `${name} ${status}`);
        }
        if (requestBody) {
          for (const status of ["400", "413", "415"]) {
            assert.ok(statuses.includes(status), `${name} ${status}`);
          }
        }
        // Each names a key, credential or model that may not exist.
        if (path.includes("{")) assert.ok(statuses.includes("404"), `${name} 404`);
        for (const status of statuses.filter((status) => Number(status) >= 400)) {
          const response = responses[status];
          assert.ok(response);
          assertErrorShape(response, `${name} ${status}`);
        }
      }
    }
    assert.ok(operation("/api/admin/keys/{id}/rotate", "post").responses["409"]);
    assert.ok(operation("/api/admin/keys/{id}/credit", "post").responses["409"]);
    assert.ok(operation("/api/admin/models", "post").responses["409"]);
    assert.ok(operation("/api/admin/models/{*}", "delete").responses["409"]);
  });
});

describe("schemas given for the document only", () => {
  it("leave a hosted image's link checked by the hub: a repeated expiry is a 403, not a 400", async () => {
    const reply = await fetch(
      `${hub.url}/files/images/nothing.png?expires=1&expires=2&signature=abc`,
    );
    assert.equal(reply.status, 403);
    assert.equal(
      ((await reply.json()) as { error: { code: string } }).error.code,
      "invalid_signature",
    );
  });

  it("leave a JSON edit checked by the handler: no image is a 400 naming 'image'", async () => {
    const reply = await fetch(`${hub.url}/v1/images/edits`, {
      method: "POST",
      headers: { authorization: `Bearer ${hub.key}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a cat", model: "local/placeholder" }),
    });
    assert.equal(reply.status, 400);
    const { error } = (await reply.json()) as { error: { param: string; code: string } };
    assert.deepEqual([error.param, error.code], ["image", "missing_required_parameter"]);
  });
});

describe("the API reference page", () => {
  it("is served at /docs with no key, loading only what the hub serves", async () => {
    const page = await fetch(`${hub.url}/docs`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    // The browser is told so too: nothing from elsewhere.
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    const html = await page.text();
    const external = [...html.matchAll(/https?:\/\/[^\s"'<>)]+/g)]
      .map(([url]) => url)
      .filter((url) => new URL(url).origin !== hub.url);
    assert.deepEqual(external, [], "no address of another host in the page");

    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map(([, url]) => url ?? "");
    const scripts = [...html.matchAll(/<script src="([^"]+)"/g)].map(([, url]) => url ?? "");
    assert.ok(scripts.length >= 2, "the page has its scripts");
    for (const asset of assets) {
      const url = new URL(asset, `${hub.url}/docs`);
      assert.equal(url.origin, hub.url, `${asset} is on the hub`);
      const reply = await fetch(url);
      assert.equal(reply.status, 200, asset);
      if (scripts.includes(asset)) {
        assert.match(reply.headers.get("content-type") ?? "", /javascript/, asset);
      }
      await reply.arrayBuffer();
    }
  });

  it("shows the document /openapi.json serves", async () => {
    const shown = await (await fetch(`${hub.url}/docs/json`)).json();
    assert.deepEqual(shown, document);
  });
});
