/**
 * The start-up check of the S3 blob store: one HeadBucket, bounded in time, that proves the
 * bucket exists and the credentials are accepted, or throws an Error whose message names
 * `BLOB_STORE_URL`, the bucket, the endpoint and what went wrong. It never creates anything:
 * a hub that started against the wrong bucket would scatter images where nobody looks.
 */
import { HeadBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { errorNameOf, httpStatusOf, responseHeaderOf } from "./s3-util.ts";

/** How long the check waits in all, credentials lookup and retries included. */
export const DEFAULT_CHECK_TIMEOUT_MS = 5_000;

const NETWORK_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "CERT_HAS_EXPIRED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

export interface S3CheckOptions {
  client: S3Client;
  bucket: string;
  timeoutMs?: number;
}

export async function checkS3BlobStore(options: S3CheckOptions): Promise<void> {
  const { client, bucket } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const command = new HeadBucketCommand({ Bucket: bucket });
  let endpoint: string | undefined;
  // Remembers where the request went, for the message: with AWS's own endpoints the host
  // depends on the region and the bucket, so nothing else knows it before the request.
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { protocol?: string; hostname?: string; port?: number };
      if (request?.hostname) {
        const port = request.port ? `:${request.port}` : "";
        endpoint = `${request.protocol ?? "https:"}//${request.hostname}${port}`;
      }
      return next(args);
    },
    { step: "finalizeRequest", name: "imageHubRecordCheckEndpoint" },
  );

  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  // The abort signal stops the HTTP request; the race also bounds what happens before it
  // (a credential chain probing for an instance role can take longer than the whole check).
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(Object.assign(new Error("timed out"), { name: "CheckTimeout" }));
    }, timeoutMs);
  });
  try {
    await Promise.race([client.send(command, { abortSignal: controller.signal }), timedOut]);
  } catch (error) {
    throw new Error(describeCheckFailure(error, bucket, endpoint, timeoutMs), { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

function describeCheckFailure(
  error: unknown,
  bucket: string,
  endpoint: string | undefined,
  timeoutMs: number,
): string {
  const where = endpoint ?? "the S3 endpoint";
  const subject = `BLOB_STORE_URL: bucket '${bucket}'`;
  const status = httpStatusOf(error);
  const name = errorNameOf(error);
  const message = error instanceof Error ? error.message : String(error);
  // A HEAD error has no body, so the SDK often knows no better name than "Unknown".
  const answer = `${status}${name === "Unknown" || name === String(status) ? "" : ` ${name}`}`;

  if (name === "CheckTimeout" || name === "AbortError" || controllerAborted(error)) {
    return `${subject}: no answer from ${where} within ${timeoutMs / 1000} s (check AWS_ENDPOINT_URL_S3 and the network).`;
  }
  if (status === 404) {
    return `${subject} does not exist (404 from ${where}); the hub never creates buckets: create it, or fix BLOB_STORE_URL, AWS_ENDPOINT_URL_S3 or AWS_REGION.`;
  }
  if (status === 403 || status === 401) {
    return `${subject}: the store refused the credentials (${answer} from ${where}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile or role) and that they may s3:ListBucket on the bucket.`;
  }
  if (status === 301 || name === "PermanentRedirect" || name === "AuthorizationHeaderMalformed") {
    const region = responseHeaderOf(error, "x-amz-bucket-region");
    const hint = region ? `it is in region ${region}: set AWS_REGION=${region}` : "set AWS_REGION";
    return `${subject} is not in the configured region (${status ?? name} from ${where}); ${hint}.`;
  }
  if (status !== undefined) {
    return `${subject}: HeadBucket failed with ${answer} from ${where}: ${message}`;
  }
  if (name === "CredentialsProviderError") {
    return `${subject}: found no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role): ${message}`;
  }
  if (/region is missing/i.test(message)) {
    return `${subject}: no region is configured; set AWS_REGION (most S3-compatible servers accept us-east-1).`;
  }
  if (NETWORK_ERRORS.has(name) || name === "TimeoutError") {
    return `${subject}: could not reach ${where} (${name}: ${message}); check AWS_ENDPOINT_URL_S3 and the network.`;
  }
  return `${subject}: the start-up check (HeadBucket at ${where}) failed: ${name}: ${message}`;
}

function controllerAborted(error: unknown): boolean {
  return (
    error instanceof Error && /aborted/i.test(error.message) && httpStatusOf(error) === undefined
  );
}
