/**
 * One log line per request, written when its reply ends (or the client leaves): method, path,
 * status, time, client address and request id, and for an image request the pipeline's summary
 * (record id, key, models, images, outcome) in the same line. Fastify's own two lines per
 * request are turned off (app.ts): the line an operator needs is this one, and writing three
 * cost about 5% of a small request's CPU.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

const summaries = new WeakMap<FastifyRequest, Record<string, unknown>>();
const written = new WeakSet<FastifyRequest>();

/** Keeps an image request's summary for its line; after its reply has ended, writes it now. */
export function noteImageSummary(
  request: FastifyRequest,
  reply: FastifyReply,
  fields: Record<string, unknown>,
): void {
  if (written.has(request) || reply.raw.writableFinished || request.raw.destroyed) {
    // A request that runs on after its client left (kept for a retry): its own line.
    request.log.info(fields, "image request");
    return;
  }
  summaries.set(request, fields);
}

export function registerRequestLog(app: FastifyInstance): void {
  /** `reply` is undefined when the client left before it: no status, no time. */
  const write = (request: FastifyRequest, reply: FastifyReply | undefined) => {
    if (written.has(request)) return;
    written.add(request);
    const image = summaries.get(request);
    summaries.delete(request);
    request.log.info(
      {
        method: request.method,
        path: request.url.split("?")[0],
        statusCode: reply ? reply.statusCode : null,
        ms: reply ? Math.round(reply.elapsedTime * 10) / 10 : null,
        remoteAddress: request.ip,
        ...(reply ? {} : { aborted: true }),
        ...image,
      },
      image ? "image request" : "request",
    );
  };
  app.addHook("onResponse", async (request, reply) => write(request, reply));
  // The summary, if any, comes later and is written on its own (noteImageSummary).
  app.addHook("onRequestAbort", async (request) => write(request, undefined));
}
