/**
 * The Dockerfile, checked where no Docker engine runs (this machine and CI have none): linted by
 * dockerfile-utils (the validator behind VS Code's Docker support), every instruction judged at
 * warning level, and read for what a production image needs: several stages, the production
 * dependencies only, a non-root user, a health check, DATA_DIR on a volume.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { DockerfileParser } from "dockerfile-ast";
import { validate } from "dockerfile-utils";

const text = await readFile(new URL("../../Dockerfile", import.meta.url), "utf8");
const instructions = DockerfileParser.parse(text).getInstructions();
const named = (keyword: string) => instructions.filter((each) => each.getKeyword() === keyword);
/** Each instruction of a kind as written, flags included (`COPY --from=…`). */
const argumentsOf = (keyword: string) =>
  named(keyword).map((each) => each.getTextContent().replace(/^\S+\s+/, ""));

describe("the Dockerfile", () => {
  it("lints clean", () => {
    const problems = validate(text).map(
      (problem) => `line ${problem.range.start.line + 1}: ${problem.message}`,
    );
    assert.deepEqual(problems, []);
  });

  it("builds in stages and installs the production dependencies only", () => {
    assert.ok(named("FROM").length >= 2, "multi-stage");
    assert.ok(
      argumentsOf("FROM").every((image) => /^node:24/.test(image)),
      "Node 24",
    );
    assert.ok(argumentsOf("RUN").some((command) => /npm ci --omit=dev/.test(command)));
    assert.ok(argumentsOf("COPY").some((command) => /--from=dependencies/.test(command)));
  });

  it("runs as a non-root user, with a health check and DATA_DIR on a volume", () => {
    assert.deepEqual(argumentsOf("USER"), ["node"]);
    assert.equal(named("HEALTHCHECK").length, 1);
    assert.match(argumentsOf("HEALTHCHECK")[0] ?? "", /\/healthz/);
    assert.ok(argumentsOf("ENV").some((env) => /DATA_DIR=\/data/.test(env)));
    assert.deepEqual(argumentsOf("VOLUME"), ['["/data"]']);
    assert.match(argumentsOf("CMD").at(-1) ?? "", /src\/main\.ts/);
  });
});
