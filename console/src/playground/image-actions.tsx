/** Download and Copy URL for a hosted image; the playground and the gallery share them. */
import { useEffect, useRef, useState } from "preact/hooks";

/** The file name in a signed URL's path (`/files/images/abc.png?expires=…` → `abc.png`). */
export function fileNameOf(url: string): string {
  return new URL(url, location.href).pathname.split("/").pop() || "image.png";
}

export function DownloadLink({ url }: { url: string }) {
  return (
    <a class="button" href={url} download={fileNameOf(url)}>
      Download
    </a>
  );
}

/**
 * Copies with the clipboard API; where there is none (a plain-http hub on another host) or it
 * is refused, the URL is shown selected in a field to copy by hand.
 */
export function CopyUrlButton({ url }: { url: string }) {
  const [state, setState] = useState<"idle" | "copied" | "manual">("idle");
  const field = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (state === "manual") field.current?.select();
    if (state !== "copied") return;
    const timer = setTimeout(() => setState("idle"), 2000);
    return () => clearTimeout(timer);
  }, [state]);

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(url);
      setState("copied");
    } catch {
      setState("manual");
    }
  };

  return (
    <>
      <button type="button" onClick={copy} class={state === "copied" ? "copied" : undefined}>
        {state === "copied" ? "Copied" : "Copy URL"}
      </button>
      {state === "manual" && (
        <input
          ref={field}
          class="copy-field"
          readOnly
          value={url}
          aria-label="Image URL: copy it with Ctrl+C"
          onFocus={(event) => event.currentTarget.select()}
        />
      )}
    </>
  );
}
