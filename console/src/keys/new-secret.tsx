/**
 * A key's secret, shown the one time the API gives it (on create and rotate). The hub keeps only
 * a hash, so this is the admin's only chance to copy it; dismissing it forgets it.
 */
import { useEffect, useRef, useState } from "preact/hooks";

export interface Secret {
  name: string;
  key: string;
  rotated: boolean;
}

export function NewSecret({ secret, onDismiss }: { secret: Secret; onDismiss: () => void }) {
  const [copied, setCopied] = useState<"" | "copied" | "select">("");
  const input = useRef<HTMLInputElement>(null);
  const region = useRef<HTMLElement>(null);

  // Keyboard and screen reader users land on the secret rather than hunting for it.
  useEffect(() => {
    setCopied("");
    region.current?.focus();
  }, [secret]);

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret.key);
      setCopied("copied");
    } catch {
      // No clipboard (a hub on plain http away from localhost): leave it selected to copy.
      input.current?.select();
      setCopied("select");
    }
  };

  return (
    <section
      class="card keys-secret"
      aria-labelledby="keys-secret-title"
      tabIndex={-1}
      ref={region}
    >
      <h2 id="keys-secret-title">
        {secret.rotated ? "Key rotated" : "Key created"}: “{secret.name}”
      </h2>
      <p class="keys-secret-warning" role="note">
        <strong>Shown once.</strong> Copy it now: the hub keeps only a hash and cannot show it
        again.
        {secret.rotated && " The old secret has stopped working."}
      </p>
      <label for="keys-secret-value">New key</label>
      <div class="keys-secret-row">
        <input
          id="keys-secret-value"
          ref={input}
          readOnly
          spellcheck={false}
          value={secret.key}
          onFocus={(event) => event.currentTarget.select()}
        />
        <button type="button" class="primary" onClick={copy}>
          Copy
        </button>
        <button type="button" onClick={onDismiss}>
          Done
        </button>
      </div>
      <p class="muted" role="status">
        {copied === "copied" && "Copied to the clipboard."}
        {copied === "select" &&
          "The browser gave no clipboard here: the key is selected, press Ctrl+C."}
      </p>
    </section>
  );
}
