/** One result: the picture (a link that opens it large) and what can be done with it. */
import { CopyUrlButton, DownloadLink } from "./image-actions.tsx";

export function ResultImage(props: {
  url: string;
  prompt: string;
  onOpen: () => void;
  onEdit: () => void;
  onAgain: () => void;
}) {
  return (
    <div class="pg-result">
      <a
        href={props.url}
        class="pg-thumb"
        title="Open large"
        onClick={(event) => {
          event.preventDefault();
          props.onOpen();
        }}
      >
        <img src={props.url} alt={props.prompt} />
      </a>
      <div class="image-actions">
        <DownloadLink url={props.url} />
        <CopyUrlButton url={props.url} />
        <button type="button" onClick={props.onEdit}>
          Edit
        </button>
        <button type="button" onClick={props.onAgain}>
          Again
        </button>
      </div>
    </div>
  );
}
