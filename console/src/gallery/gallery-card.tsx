/** One hosted image: the picture (a link that opens it large) and what it is. */
import { usd } from "../components.tsx";
import type { GalleryImage } from "./use-gallery.ts";

export function expiresText(expiresAt: number, now: number): string {
  const minutes = Math.ceil((expiresAt * 1000 - now) / 60_000);
  if (minutes <= 0) return "expired";
  return minutes >= 120 ? `expires in ${Math.round(minutes / 60)} h` : `expires in ${minutes} min`;
}

export function costText(cost: number): string {
  return cost === 0 ? "free" : usd(cost);
}

export function GalleryCard(props: {
  image: GalleryImage;
  /** The key's name, shown to admins; undefined for a client key. */
  keyName?: string;
  now: number;
  onOpen: () => void;
}) {
  const { image } = props;
  const [width, height] = /^\d+x\d+$/.test(image.size) ? image.size.split("x") : [];
  return (
    <article class="card gl-card">
      <a
        href={image.url}
        class="gl-thumb"
        title="Open large"
        onClick={(event) => {
          event.preventDefault();
          props.onOpen();
        }}
      >
        <img src={image.url} alt={image.prompt} loading="lazy" width={width} height={height} />
      </a>
      <p class="gl-prompt" title={image.prompt}>
        {image.prompt}
      </p>
      <p class="muted gl-meta">
        <span>{image.model}</span>
        <span>{image.size}</span>
        <span>{costText(image.cost)}</span>
        {props.keyName !== undefined && <span>key: {props.keyName}</span>}
        <span>{expiresText(image.expires_at, props.now)}</span>
      </p>
    </article>
  );
}
