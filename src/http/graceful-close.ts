/**
 * Closing without waiting on idle connections. `app.close()` stops accepting and lets requests
 * in flight finish, but Node keeps two kinds of socket open long after: one that connected and
 * never sent a request (a load balancer's pre-opened socket) until its headers timeout, and a
 * keep-alive socket that becomes idle after its last reply until the keep-alive timeout. Either
 * would hold shutdown for a minute or more. Here idle sockets are closed when closing begins,
 * and replies sent while closing say `Connection: close`.
 */
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";

export function registerGracefulClose(app: FastifyInstance): void {
  const idle = new Set<Socket>();
  // Only sockets of the server itself; `app.inject` requests have stand-ins that are not.
  const connections = new WeakSet<Socket>();
  let closing = false;

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
    for (const socket of idle) socket.destroy();
    idle.clear();
  });
}
