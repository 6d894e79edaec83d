/**
 * Closing gracefully: refuse new connections at once, let the requests in flight finish, and
 * only then let the resources (database, last-used batch) close.
 *
 * Fastify's own close falls short in two ways:
 * - It stops listening only after the `preClose` hooks, and its `server.close()` then waits on
 *   idle sockets: one that connected and never sent a request (a load balancer's pre-opened
 *   socket) until its headers timeout, and a keep-alive socket that becomes idle after its last
 *   reply until the keep-alive timeout. Here the listener closes and idle sockets are destroyed
 *   as soon as closing begins, and replies sent while closing say `Connection: close`.
 * - It waits for connections, not for handlers. A handler whose client went away (or whose
 *   connection the process cut when its shutdown grace ran out) still has work to do: the image
 *   pipeline writes its usage record and gives back its reservation after the abort. Closing
 *   the database under it would leave the reservation open, so closing waits until every
 *   handler of a request on the server's connections has returned.
 *
 * How long to wait is the process's decision (main.ts, SHUTDOWN_GRACE_SECONDS).
 */
import type { Socket } from "node:net";
import type { FastifyInstance, FastifyRequest, RouteHandlerMethod } from "fastify";

const cutServers = new WeakSet<object>();

/**
 * Cuts every connection of the server: the end of the shutdown grace. Requests cut this way are
 * recorded as `server_shutting_down`, not as clients that left.
 */
export function cutConnections(server: FastifyInstance["server"]): void {
  cutServers.add(server);
  server.closeAllConnections();
}

/** Whether the server's connections were cut by a shutdown (see `cutConnections`). */
export function wasCut(server: FastifyInstance["server"]): boolean {
  return cutServers.has(server);
}

export function registerGracefulClose(app: FastifyInstance): void {
  const idle = new Set<Socket>();
  // Only sockets of the server itself; `app.inject` requests have stand-ins that are not.
  const connections = new WeakSet<Socket>();
  const handlers = createHandlerCount();
  let closing = false;

  // Every route registered after this (all of them: app.ts calls this first) is counted, for
  // requests on the server's connections: an `app.inject` caller awaits its own request.
  const ownRequest = (request: FastifyRequest) => connections.has(request.raw.socket);
  app.addHook("onRoute", (route) => {
    route.handler = countedHandler(route.handler, ownRequest, handlers);
  });
  app.server.on("connection", (socket: Socket) => {
    connections.add(socket);
    idle.add(socket);
    socket.once("close", () => idle.delete(socket));
  });
  app.addHook("onRequest", async (request) => {
    idle.delete(request.raw.socket);
  });
  app.addHook("onSend", async (_request, reply) => {
    if (closing) reply.header("connection", "close");
  });
  app.addHook("onResponse", async (request) => {
    const socket = request.raw.socket;
    if (!connections.has(socket) || socket.destroyed) return;
    if (closing) socket.end();
    else idle.add(socket);
  });
  app.addHook("preClose", async () => {
    closing = true;
    // Refuse new connections now, not after the wait below. Fastify calls `server.close` again
    // afterwards; on a server already closed that only waits for the connections to end.
    if (app.server.listening) app.server.close();
    for (const socket of idle) socket.destroy();
    idle.clear();
    await handlers.drained();
  });
}

interface HandlerCount {
  track(running: PromiseLike<unknown>): void;
  /** Resolves once no handler is running. */
  drained(): Promise<void>;
}

function createHandlerCount(): HandlerCount {
  let running = 0;
  let waiting: Array<() => void> = [];
  const done = () => {
    running -= 1;
    if (running > 0) return;
    for (const resolve of waiting) resolve();
    waiting = [];
  };
  return {
    track(handler) {
      running += 1;
      handler.then(done, done);
    },
    drained() {
      return running === 0 ? Promise.resolve() : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

/** The same handler, its result untouched, counted while its promise is pending. */
function countedHandler(
  handler: RouteHandlerMethod,
  counts: (request: FastifyRequest) => boolean,
  count: HandlerCount,
): RouteHandlerMethod {
  return function counted(this: FastifyInstance, request, reply) {
    const result: unknown = handler.call(this, request, reply);
    if (isPromiseLike(result) && counts(request)) count.track(result);
    return result;
  } as RouteHandlerMethod;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
