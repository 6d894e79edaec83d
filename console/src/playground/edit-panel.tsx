/**
 * The image being edited, with a canvas over it to paint the mask with a mouse, a finger or a
 * pen (pointer events). The canvas has the image's own pixels, so the mask matches the image
 * whatever size the panel is shown at.
 */
import type { RefObject } from "preact";
import { useRef, useState } from "preact/hooks";
import type { EditImage } from "./types.ts";

interface Point {
  x: number;
  y: number;
  scale: number;
}

export function EditPanel(props: {
  image: EditImage;
  /** Whether the model takes a mask; without one the whole image may change. */
  maskable: boolean;
  canvasRef: RefObject<HTMLCanvasElement>;
  drawn: boolean;
  onDrawn: (drawn: boolean) => void;
  onRemove: () => void;
}) {
  const { image, maskable, canvasRef, drawn, onDrawn } = props;
  const [brush, setBrush] = useState(40);
  const last = useRef<Point | null>(null);

  const pointOf = (event: PointerEvent): Point => {
    const canvas = event.currentTarget as HTMLCanvasElement;
    const rect = canvas.getBoundingClientRect();
    const scale = canvas.width / rect.width;
    return { x: (event.clientX - rect.left) * scale, y: (event.clientY - rect.top) * scale, scale };
  };
  const paint = (from: Point, to: Point) => {
    const context = canvasRef.current?.getContext("2d");
    if (!context) return;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.lineWidth = brush * to.scale;
    context.strokeStyle = "#ff2d55";
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
  };
  const onPointerDown = (event: PointerEvent) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    (event.currentTarget as HTMLCanvasElement).setPointerCapture(event.pointerId);
    const point = pointOf(event);
    last.current = point;
    paint(point, point);
    if (!drawn) onDrawn(true);
  };
  const onPointerMove = (event: PointerEvent) => {
    if (!last.current) return;
    const point = pointOf(event);
    paint(last.current, point);
    last.current = point;
  };
  const onPointerEnd = () => {
    last.current = null;
  };
  const clear = () => {
    const canvas = canvasRef.current;
    canvas?.getContext("2d")?.clearRect(0, 0, canvas.width, canvas.height);
    onDrawn(false);
  };

  return (
    <section class="pg-edit" aria-label="Image to edit">
      <div class="pg-edit-stage">
        <img
          src={image.url}
          alt={`To edit: ${image.name}`}
          width={image.width}
          height={image.height}
        />
        {/* Hidden, not removed, for a model without masks: the strokes wait for the next one. */}
        <canvas
          ref={canvasRef}
          class="pg-mask"
          hidden={!maskable}
          width={image.width}
          height={image.height}
          role="img"
          aria-label="Mask: paint over the area to change"
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerEnd}
          onPointerCancel={onPointerEnd}
        />
      </div>
      <p class="muted pg-hint">
        {image.name} · {image.width}×{image.height}.{" "}
        {maskable
          ? "Paint where the image should change; with no mask the whole image may change."
          : "This model takes no mask: the whole image may change."}
      </p>
      <div class="pg-edit-tools">
        {maskable && (
          <>
            <div class="pg-brush">
              <label for="pg-brush">Brush size</label>
              <input
                id="pg-brush"
                type="range"
                min={4}
                max={160}
                value={brush}
                onInput={(event) => setBrush(Number(event.currentTarget.value))}
              />
            </div>
            <button type="button" onClick={clear} disabled={!drawn}>
              Clear mask
            </button>
          </>
        )}
        <button type="button" onClick={props.onRemove}>
          Remove image
        </button>
      </div>
    </section>
  );
}
