/**
 * The Playground: pick a model from the live catalog, set the options it takes, write a prompt,
 * and generate, or edit an image with a painted mask. Each request is a job of its own, so
 * several run at once while the form stays usable; results stay for the tab's life.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ErrorNotice, Notice, PageHeader } from "../components.tsx";
import { EditPanel } from "../playground/edit-panel.tsx";
import { defaultsFor, type FormValues, optionsOf } from "../playground/form-values.ts";
import { ImageDialog, type ShownImage } from "../playground/image-dialog.tsx";
import { ImageInput } from "../playground/image-input.tsx";
import { useJobs } from "../playground/jobs.ts";
import { initialModel, rememberModel, useModels } from "../playground/models.ts";
import { PlaygroundForm } from "../playground/playground-form.tsx";
import { Results } from "../playground/results.tsx";
import { sizeChoices } from "../playground/sizes.ts";
import type { EditImage, Job, ModelEntry } from "../playground/types.ts";
import { useEditImage } from "../playground/use-edit-image.ts";
import type { Session } from "../session.ts";
import "../playground/playground.css";

export function PlaygroundPage({ session }: { session: Session }) {
  const { models, error, refresh } = useModels(session.api);
  const [modelId, setModelId] = useState<string | null>(null);
  const model = models?.find((entry) => entry.id === modelId) ?? null;
  const [values, setValues] = useState<FormValues | null>(null);
  const [prompt, setPrompt] = useState("");
  const [shown, setShown] = useState<ShownImage | null>(null);
  const [maskError, setMaskError] = useState<unknown>(null);
  const { jobs, run, cancel, clear } = useJobs(session.key, session.api);

  // An image's own size is the natural size for its edit, when the model offers it.
  const onImageLoaded = (image: EditImage) => {
    const size = `${image.width}x${image.height}`;
    if (model && sizeChoices(model).sizes.includes(size)) {
      setValues((current) => current && { ...current, size });
    }
    // The panel may be far above the result that was chosen (a phone's one column).
    requestAnimationFrame(() => {
      document.querySelector(".pg-edit")?.scrollIntoView({ block: "nearest" });
      document.getElementById("pg-prompt")?.focus({ preventScroll: true });
    });
  };
  const edit = useEditImage(onImageLoaded);

  const choose = (next: ModelEntry) => {
    setModelId(next.id);
    setValues(defaultsFor(next));
  };
  // A refreshed list keeps the choice and the form; a model gone from it is replaced.
  useEffect(() => {
    if (!models || model) return;
    const first = initialModel(models);
    if (first) choose(first);
  }, [models]);
  // Each finished request teaches the hub the model's typical time; the next job shows it.
  const finished = jobs.filter((job) => job.state === "done").length;
  useEffect(() => {
    if (finished > 0) refresh();
  }, [finished]);

  if (error)
    return (
      <Page>
        <ErrorNotice error={error} />
      </Page>
    );
  if (!models)
    return (
      <Page>
        <p class="muted" aria-busy="true">
          Loading the models…
        </p>
      </Page>
    );
  if (models.length === 0) {
    return (
      <Page>
        <Notice>
          This key can use no model on this hub: no provider has credentials, or the key is limited
          to models the hub does not serve.
        </Notice>
      </Page>
    );
  }
  if (!model || !values) return <Page />;

  const generate = async () => {
    const options = optionsOf(model, values);
    if (!edit.image) return run({ ...options, prompt }, model.typical_ms ?? null);
    setMaskError(null);
    let mask: Blob | null = null;
    try {
      mask = (model.mask ?? model.edits) ? await edit.mask() : null;
    } catch (caught) {
      return setMaskError(caught);
    }
    const image = { image: edit.image.blob, name: edit.image.name, mask };
    run({ ...options, prompt, edit: image }, model.typical_ms ?? null);
  };
  const typicalOf = (id: string) => models.find((entry) => entry.id === id)?.typical_ms ?? null;
  const handlers = {
    onOpen: (job: Job, url: string) =>
      setShown({
        url,
        prompt: job.settings.prompt,
        details: `${job.reply?.model ?? job.settings.model} · ${job.settings.size}`,
      }),
    onEdit: (url: string) => edit.fromUrl(url),
    onAgain: (job: Job) => run(job.settings, typicalOf(job.settings.model)),
    onCancel: (job: Job) => cancel(job.id),
  };

  return (
    <Page>
      <div class={`playground${edit.dragging ? " dragging" : ""}`}>
        <PlaygroundForm
          models={models}
          model={model}
          values={values}
          prompt={prompt}
          editing={edit.image !== null}
          onModel={(next) => {
            rememberModel(next.id);
            choose(next);
          }}
          onValues={(change) => setValues({ ...values, ...change })}
          onPrompt={setPrompt}
          onGenerate={generate}
        >
          {edit.image ? (
            <EditPanel
              key={edit.image.url}
              image={edit.image}
              maskable={model.mask ?? model.edits}
              canvasRef={edit.canvasRef}
              drawn={edit.maskDrawn}
              onDrawn={edit.setMaskDrawn}
              onRemove={edit.remove}
            />
          ) : (
            <ImageInput onFile={edit.fromFile} />
          )}
          {edit.loading && (
            <p class="muted" aria-busy="true">
              Loading the image…
            </p>
          )}
          <ErrorNotice error={edit.error ?? maskError} />
        </PlaygroundForm>
        <Results jobs={jobs} handlers={handlers} onClear={clear} />
      </div>
      <ImageDialog image={shown} onClose={() => setShown(null)} />
    </Page>
  );
}

function Page({ children }: { children?: ComponentChildren }) {
  return (
    <>
      <PageHeader title="Playground" />
      {children}
    </>
  );
}
