/**
 * Group commit (storage/db/group-commit.ts): rows written in one turn share one commit, each
 * writer learns of its own row's fate, and a batch that fails is written row by row so one bad
 * row loses no other.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { groupCommit } from "../../../src/storage/db/group-commit.ts";

describe("groupCommit", () => {
  it("commits what one turn wrote together, and settles each writer after the commit", async () => {
    const commits: number[][] = [];
    const write = groupCommit<number>(
      (items) => commits.push([...items]),
      () => assert.fail("no batch failed"),
    );
    const first = await Promise.all([write(1), write(2), write(3)]);
    assert.equal(first.length, 3);
    await write(4);
    assert.deepEqual(commits, [[1, 2, 3], [4]]);
  });

  it("writes a failed batch row by row: only the bad row's writer hears of it", async () => {
    const written: number[] = [];
    const write = groupCommit<number>(
      () => {
        throw new Error("the batch failed");
      },
      (item) => {
        if (item === 2) throw new Error("row 2 is bad");
        written.push(item);
      },
    );
    const results = await Promise.allSettled([write(1), write(2), write(3)]);
    assert.deepEqual(
      results.map((result) => result.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
    assert.deepEqual(written, [1, 3]);
  });
});
