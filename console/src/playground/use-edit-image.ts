/**
 * The image to edit, from a file, a drop, a paste or a result, and the mask painted over it.
 * Only one at a time; its object URL is let go when it is replaced or the page closes.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { imageFileOf, imageFromUrl, loadEditImage, maskOf } from "./edit-image.ts";
import type { EditImage } from "./types.ts";

export function useEditImage(onLoaded: (image: EditImage) => void) {
  const [image, setImage] = useState<EditImage | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [maskDrawn, setMaskDrawn] = useState(false);
  const [dragging, setDragging] = useState(false);
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const current = useRef<EditImage | null>(null);
  const loaded = useRef(onLoaded);
  loaded.current = onLoaded;

  const replace = (next: EditImage | null) => {
    if (current.current) URL.revokeObjectURL(current.current.url);
    current.current = next;
    setImage(next);
    setMaskDrawn(false);
  };
  const load = (pending: Promise<EditImage>) => {
    setLoading(true);
    setError(null);
    pending
      .then((next) => {
        replace(next);
        loaded.current(next);
      })
      .catch((caught: unknown) => setError(caught))
      .finally(() => setLoading(false));
  };
  const fromFile = (file: File) => load(loadEditImage(file, file.name || "pasted.png"));

  // A pasted or dropped image becomes the image to edit; pasted text is left to its field.
  useEffect(() => {
    const onPaste = (event: ClipboardEvent) => {
      const file = imageFileOf(event.clipboardData?.files);
      if (!file) return;
      event.preventDefault();
      fromFile(file);
    };
    const onDragOver = (event: DragEvent) => {
      if (!event.dataTransfer?.types.includes("Files")) return;
      event.preventDefault();
      setDragging(true);
    };
    const onDragLeave = (event: DragEvent) => {
      if (event.relatedTarget === null) setDragging(false);
    };
    const onDrop = (event: DragEvent) => {
      setDragging(false);
      const file = imageFileOf(event.dataTransfer?.files);
      if (!file) return;
      event.preventDefault();
      fromFile(file);
    };
    const listeners = {
      paste: onPaste,
      dragover: onDragOver,
      dragleave: onDragLeave,
      drop: onDrop,
    };
    for (const [name, listener] of Object.entries(listeners)) {
      document.addEventListener(name, listener as EventListener);
    }
    return () => {
      for (const [name, listener] of Object.entries(listeners)) {
        document.removeEventListener(name, listener as EventListener);
      }
      if (current.current) URL.revokeObjectURL(current.current.url);
    };
  }, []);

  return {
    image,
    error,
    loading,
    maskDrawn,
    setMaskDrawn,
    /** Whether a file is being dragged over the page. */
    dragging,
    canvasRef,
    fromFile,
    fromUrl: (url: string) => load(imageFromUrl(url)),
    remove: () => {
      replace(null);
      setError(null);
    },
    /** The mask to send: only when one was painted (no mask: the whole image may change). */
    mask: (): Promise<Blob | null> =>
      maskDrawn && canvasRef.current ? maskOf(canvasRef.current) : Promise.resolve(null),
  };
}
