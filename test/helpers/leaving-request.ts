/**
 * An image request a test client can walk away from: over its own connection (node:http without
 * an agent, so that going away leaves no pooled connection behind), destroyed to leave.
 */
import { request as httpRequest } from "node:http";

export interface LeavingRequest {
  /** Goes away: the socket is destroyed. */
  leave(): void;
  /** Whether the client got a reply at all before it left. */
  answered: Promise<boolean>;
}

export function requestOverSocket(
  hubUrl: string,
  key: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): LeavingRequest {
  const { hostname, port } = new URL(hubUrl);
  const request = httpRequest({
    hostname,
    port,
    path: "/api/images/generations",
    method: "POST",
    agent: false,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
  });
  const answered = new Promise<boolean>((resolve) => {
    request.on("response", () => resolve(true));
    request.on("error", () => resolve(false));
    request.on("close", () => resolve(false));
  });
  request.end(JSON.stringify(body));
  return { leave: () => request.destroy(), answered };
}
