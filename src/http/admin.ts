/**
 * The admin API (an admin key required). For now: issuing API keys. The secret is in the 201
 * reply once and stored only as a hash.
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { issueKey } from "../auth/issue.ts";
import { ErrorResponse } from "../images/schema.ts";
import type { Database } from "../storage/db/types.ts";
import type { AuthHooks } from "./auth.ts";

const CreateKeyBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  role: Type.Optional(Type.Union([Type.Literal("client"), Type.Literal("admin")])),
});

const KeyCreated = Type.Object({
  id: Type.String(),
  object: Type.Literal("api_key"),
  name: Type.String(),
  role: Type.String(),
  created_at: Type.Integer({ description: "Unix seconds" }),
  key: Type.String({ description: "The secret: shown once, store it now." }),
});

export function registerAdminRoutes(
  app: FastifyInstance,
  options: { db: Database; auth: AuthHooks },
): void {
  app.post<{ Body: { name: string; role?: "client" | "admin" } }>(
    "/api/admin/keys",
    {
      onRequest: options.auth.requireAdmin,
      schema: {
        summary: "Create an API key",
        tags: ["admin"],
        security: [{ bearerAuth: [] }],
        body: CreateKeyBody,
        response: { 201: KeyCreated, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse },
      },
    },
    async (request, reply) => {
      const issued = await issueKey(options.db, {
        name: request.body.name,
        role: request.body.role ?? "client",
      });
      request.log.info({ keyId: issued.id, role: issued.role }, "API key created");
      return reply.status(201).send({
        id: issued.id,
        object: "api_key",
        name: issued.name,
        role: issued.role,
        created_at: Math.floor(issued.createdAt / 1000),
        key: issued.key,
      });
    },
  );
}
