/**
 * OpenAI's settings a provider has no notion of, as warnings: reported to the client, not sent.
 * For servers whose output is fixed by their own configuration (AUTOMATIC1111, a ComfyUI
 * workflow), where only `made` formats can come back.
 */
import type { ProviderCall } from "./types.ts";

export function ignoredHints(
  provider: string,
  call: ProviderCall,
  made: readonly string[] = ["png"],
): string[] {
  const hints: [string, unknown][] = [
    ["quality", call.quality],
    ["style", call.style],
    ["background", call.background],
    ["output_compression", call.outputCompression],
    ["moderation", call.moderation],
    ["user", call.user],
  ];
  if (call.outputFormat !== undefined && !made.includes(call.outputFormat)) {
    hints.push(["output_format", call.outputFormat]);
  }
  return hints
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${provider} takes no '${name}'; '${String(value)}' was not sent.`);
}
