/** "Image to edit": a file input; dropping or pasting an image anywhere on the page works too. */
export function ImageInput({ onFile }: { onFile: (file: File) => void }) {
  return (
    <div class="field pg-image-input">
      <label for="pg-image">Image to edit</label>
      <input
        id="pg-image"
        type="file"
        accept="image/png,image/jpeg,image/webp"
        aria-describedby="pg-image-hint"
        onChange={(event) => {
          const file = event.currentTarget.files?.[0];
          if (file) onFile(file);
          event.currentTarget.value = "";
        }}
      />
      <p id="pg-image-hint" class="muted pg-hint">
        Optional. Or drop an image on the page, paste one, or choose Edit on a result.
      </p>
    </div>
  );
}
