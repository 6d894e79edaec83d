/**
 * One image shown large in a modal `<dialog>`: Escape, the Close button or a click beside the
 * picture closes it, and focus returns where it was.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { CopyUrlButton, DownloadLink } from "./image-actions.tsx";
import "./image-dialog.css";

export interface ShownImage {
  url: string;
  prompt: string;
  /** A line of facts under the prompt (model, size, cost). */
  details?: ComponentChildren;
}

export function ImageDialog({ image, onClose }: { image: ShownImage | null; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (image && !element.open) element.showModal();
    if (!image && element.open) element.close();
  }, [image]);
  // A click on the backdrop (the dialog itself, outside its body) closes it; Escape does too.
  useEffect(() => {
    const element = dialog.current;
    const onClick = (event: MouseEvent) => {
      if (event.target === element) element?.close();
    };
    element?.addEventListener("click", onClick);
    return () => element?.removeEventListener("click", onClick);
  }, []);

  return (
    <dialog
      ref={dialog}
      class="image-dialog"
      aria-labelledby="image-dialog-prompt"
      onClose={onClose}
    >
      {image && (
        <div class="image-dialog-body">
          <img src={image.url} alt={image.prompt} />
          <p id="image-dialog-prompt" class="image-dialog-prompt">
            {image.prompt}
          </p>
          {image.details && <p class="muted image-dialog-details">{image.details}</p>}
          <div class="image-actions">
            <DownloadLink url={image.url} />
            <CopyUrlButton url={image.url} />
            <button type="button" class="primary" onClick={() => dialog.current?.close()}>
              Close
            </button>
          </div>
        </div>
      )}
    </dialog>
  );
}
