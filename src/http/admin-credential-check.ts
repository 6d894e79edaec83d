/**
 * `POST /api/admin/credentials/{id}/test`: does this provider credential work now? The hub asks
 * the provider for its model list through that credential alone (a call that costs nothing),
 * even when the credential is cooling down or refused, and answers what happened with the
 * credential's status after it: a success clears a refusal, a 401 quarantines it, as any call
 * would. A provider without a free call answers `ok: null`; the hub never spends money to test.
 */
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { ProviderRegistry } from "../credentials/registry.ts";
import { isHubError } from "../errors.ts";
import { adminErrorResponses } from "../images/schema.ts";
import { viewOf } from "./admin-credentials.ts";
import type { AuthHooks } from "./auth.ts";

const CredentialCheck = Type.Object({
  id: Type.String(),
  object: Type.Literal("credential_test"),
  ok: Type.Union([Type.Boolean(), Type.Null()], {
    description: "Whether the provider accepted the credential; null when it could not be tested.",
  }),
  latency_ms: Type.Union([Type.Integer(), Type.Null()]),
  detail: Type.String({ description: "What happened, in words (the provider's, keys cut out)." }),
  status: Type.String({ description: "The credential's status after the test (as listed)." }),
});

export function registerCredentialCheck(
  app: FastifyInstance,
  options: { registry: ProviderRegistry; auth: AuthHooks; clock?: () => number },
): void {
  const { registry, auth } = options;
  const clock = options.clock ?? Date.now;
  app.post<{ Params: { id: string } }>(
    "/api/admin/credentials/:id/test",
    {
      onRequest: auth.requireAdmin,
      schema: {
        tags: ["admin"],
        security: [{ bearerAuth: [] }],
        summary: "Test a provider credential with a call that costs nothing (its model list)",
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }),
        response: { 200: CredentialCheck, ...adminErrorResponses([404]) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      viewOf(registry, id);
      // The admin who closed the page no longer waits for the answer.
      const controller = new AbortController();
      reply.raw.once("close", () => {
        if (!reply.raw.writableFinished) controller.abort();
      });
      const started = clock();
      let ok: boolean | null;
      let detail: string;
      try {
        const checked = await registry.check(id, controller.signal);
        if (checked === undefined) {
          ok = null;
          detail = "The credential is not in use (disabled, or its key cannot be decrypted).";
        } else if (!checked.tested) {
          ok = null;
          detail =
            "This provider has no call that costs nothing; it is tested by its next request.";
        } else {
          ok = true;
          detail = `The provider answered: ${checked.models} models listed.`;
        }
      } catch (error) {
        ok = false;
        detail = isHubError(error) ? error.message : "The test call failed.";
      }
      const latency = ok === null ? null : clock() - started;
      request.log.info({ credentialId: id, ok }, "provider credential tested");
      return {
        id,
        object: "credential_test" as const,
        ok,
        latency_ms: latency,
        detail,
        status: viewOf(registry, id).status,
      };
    },
  );
}
