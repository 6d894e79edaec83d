/**
 * What the benchmark asks of whom: the targets, the scenarios of issue 17, and each target's
 * address and headers.
 *
 *   S0c1   tiny   dall-e-2 256x256 b64_json (a PNG of a few KB), one connection: a gateway's own
 *                 overhead per request, without queueing
 *   S0     tiny   the same at 16 connections: how many such requests it serves
 *   S1     url    dall-e-2 256x256 without response_format (the spec's default, `url`), which
 *                 the upstream answers with a URL: the hub fetches it, stores it and signs a
 *                 link. Hub only (plus bare): the floors and Portkey do not re-host
 *   S2     large  dall-e-2 1024x1024 b64_json (a 1.5 MB PNG, a 2 MB reply), 16 connections
 *   S2c64  large  the same at 64 connections, for peak memory
 *   S3     many   dall-e-2 n=4 1024x1024 b64_json (8 MB replies), 32 connections
 *   S4     hosted gpt-image-1 1024x1024 url: the hub stores the large image it got as base64
 *                 (hub only, compared with the hub in S2)
 *   S5     edit   gpt-image-1 with a 4 MB base64 input image (hub only, compared with the hub in S2)
 */
import type { Child, HubTarget, UpstreamTarget } from "./targets.ts";
import { URL_REPLY_USER } from "./upstream.ts";

/** `bare` is the upstream called directly; the floors are bench/floor.ts in its three modes. */
export const TARGETS = [
  "bare",
  "floor-stream",
  "floor-buffered",
  "floor-row",
  "image-hub",
  "portkey",
] as const;
export type TargetName = (typeof TARGETS)[number];

export const FLOOR_MODES = {
  "floor-stream": "stream",
  "floor-buffered": "buffered",
  "floor-row": "buffered-row",
} as const;
export type FloorName = keyof typeof FLOOR_MODES;

export interface Scenario {
  id: string;
  title: string;
  connections: number;
  /** Seconds per measured round; longer where replies take long, so a round holds many. */
  roundSeconds: number;
  targets: readonly TargetName[];
  body: Record<string, unknown>;
  expect: { images: number; kind: "b64_json" | "url" };
  /** Hub-only scenarios are compared with the hub's numbers in this scenario. */
  reference?: string;
}

export interface Endpoint {
  url: string;
  headers: Record<string, string>;
}

export interface Running {
  upstream: UpstreamTarget;
  floors: Partial<Record<FloorName, Child>>;
  hub: HubTarget | undefined;
  peer: Child | undefined;
}

const PROMPT = "A photorealistic image of a cat programming on a laptop, warm evening light";
const EVERY: readonly TargetName[] = TARGETS;
/** Portkey at 64 connections of 2 MB replies takes seconds a request; it has S2 for its figure. */
const NO_PEER = TARGETS.filter((target) => target !== "portkey");

export function allScenarios(): Scenario[] {
  const dallE2 = { model: "dall-e-2", prompt: PROMPT, response_format: "b64_json" };
  const tiny = { ...dallE2, n: 1, size: "256x256" };
  const large = { ...dallE2, n: 1, size: "1024x1024" };
  const b64 = { images: 1, kind: "b64_json" } as const;
  return [
    {
      id: "S0c1",
      title: "tiny b64_json, no queueing",
      connections: 1,
      roundSeconds: 2,
      targets: EVERY,
      body: tiny,
      expect: b64,
    },
    {
      id: "S0",
      title: "tiny b64_json (a PNG of a few KB)",
      connections: 16,
      roundSeconds: 3,
      targets: EVERY,
      body: tiny,
      expect: b64,
    },
    {
      id: "S1",
      title: "url reply: dall-e-2 256x256, the upstream answers a URL, the hub re-hosts it",
      connections: 16,
      roundSeconds: 3,
      targets: ["bare", "image-hub"],
      body: { model: "dall-e-2", prompt: PROMPT, n: 1, size: "256x256", user: URL_REPLY_USER },
      expect: { images: 1, kind: "url" },
    },
    {
      id: "S2",
      title: "large: 1024x1024 b64_json (about 1.5 MB)",
      connections: 16,
      roundSeconds: 4,
      targets: EVERY,
      body: large,
      expect: b64,
    },
    {
      id: "S2c64",
      title: "large, for peak memory",
      connections: 64,
      roundSeconds: 4,
      targets: NO_PEER,
      body: large,
      expect: b64,
    },
    {
      id: "S3",
      title: "many: n=4 1024x1024 b64_json",
      connections: 32,
      roundSeconds: 6,
      targets: ["bare", "floor-stream", "floor-buffered", "image-hub", "portkey"],
      body: { ...large, n: 4 },
      expect: { images: 4, kind: "b64_json" },
    },
    {
      id: "S4",
      title: "hosted: gpt-image-1 1024x1024 response_format url",
      connections: 16,
      roundSeconds: 4,
      targets: ["image-hub"],
      body: { model: "gpt-image-1", prompt: PROMPT, size: "1024x1024", response_format: "url" },
      expect: { images: 1, kind: "url" },
      reference: "S2",
    },
    {
      id: "S5",
      title: "edit: gpt-image-1, 4 MB base64 input, b64_json",
      connections: 8,
      roundSeconds: 6,
      targets: ["image-hub"],
      body: {
        model: "gpt-image-1",
        prompt: PROMPT,
        image: "", // a 4 MB PNG that run.ts makes only when S5 runs (it takes a second)
        size: "1024x1024",
        response_format: "b64_json",
      },
      expect: b64,
      reference: "S2",
    },
  ];
}

/** `S0` selects S0 and S0c1, `S2` S2 and S2c64: the halves of one question. */
export function selectScenarios(scenarios: Scenario[], wanted: string | undefined): Scenario[] {
  if (wanted === undefined) return scenarios;
  const ids = wanted.split(",").map((id) => id.trim().toUpperCase());
  const matches = (scenario: Scenario, id: string) => scenario.id.toUpperCase().startsWith(id);
  const unknown = ids.filter((id) => !scenarios.some((scenario) => matches(scenario, id)));
  if (unknown.length > 0) {
    throw new Error(`Unknown scenario ${unknown.join(", ")}; there are S0 to S5.`);
  }
  return scenarios.filter((scenario) => ids.some((id) => matches(scenario, id)));
}

/** The scenarios with only the targets named (comma-separated); bare is always kept. */
export function onlyTargets(scenarios: Scenario[], wanted: string | undefined): Scenario[] {
  if (wanted === undefined) return scenarios;
  const names = wanted.split(",").map((name) => name.trim());
  const unknown = names.filter((name) => !(TARGETS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(`Unknown target ${unknown.join(", ")}; there are ${TARGETS.join(", ")}.`);
  }
  return scenarios.map((scenario) => ({
    ...scenario,
    targets: scenario.targets.filter((target) => target === "bare" || names.includes(target)),
  }));
}

/** The targets the chosen scenarios need, in the order of TARGETS; the upstream always runs. */
export function targetsOf(scenarios: Scenario[]): TargetName[] {
  return TARGETS.filter((target) =>
    scenarios.some((scenario) => scenario.targets.includes(target)),
  );
}

export function isFloor(target: TargetName): target is FloorName {
  return target in FLOOR_MODES;
}

export function pidOf(target: TargetName, running: Running): number | undefined {
  if (target === "bare") return running.upstream.pid;
  if (target === "image-hub") return running.hub?.pid;
  if (target === "portkey") return running.peer?.pid;
  return running.floors[target]?.pid;
}

export function endpointOf(target: TargetName, running: Running): Endpoint {
  const json = { "content-type": "application/json" };
  const path = "/v1/images/generations";
  const { upstream, hub, peer } = running;
  if (target === "bare") {
    return {
      url: `${upstream.origin}${path}`,
      headers: { ...json, authorization: `Bearer ${upstream.apiKey}` },
    };
  }
  if (isFloor(target)) {
    const floor = running.floors[target];
    if (floor === undefined) throw new Error(`${target} is not running`);
    // The floor puts the upstream's key on every call; what the client sends is not checked.
    return {
      url: `${floor.origin}${path}`,
      headers: { ...json, authorization: "Bearer sk-floor-client" },
    };
  }
  if (target === "image-hub") {
    if (hub === undefined) throw new Error("image-hub is not running");
    return {
      url: `${hub.origin}${path}`,
      headers: { ...json, authorization: `Bearer ${hub.clientKey}` },
    };
  }
  if (peer === undefined) throw new Error("portkey is not running");
  return {
    url: `${peer.origin}${path}`,
    headers: {
      ...json,
      authorization: `Bearer ${upstream.apiKey}`,
      "x-portkey-provider": "openai",
      "x-portkey-custom-host": `${upstream.origin}/v1`,
    },
  };
}
