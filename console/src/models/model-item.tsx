/**
 * One model of the catalog: a one-line summary (what an admin scans 50 rows for) that opens on
 * its full price table, description and sources.
 */
import { usd } from "../components.tsx";
import { type CatalogModel, priceSummary, sizeText } from "./types.ts";

const STATUS_CLASS = { active: "status-ok", deprecated: "status-warn", retired: "status-bad" };

export function ModelItem({ model }: { model: CatalogModel }) {
  return (
    <li>
      <details class="models-item" data-model={model.id}>
        <summary>
          <span class="models-id">
            <code>{model.id}</code>
            {model.aliases && model.aliases.length > 0 && (
              <span class="muted models-small"> also {model.aliases.join(", ")}</span>
            )}
          </span>
          <span class="models-provider">
            <span class="models-label">Provider </span>
            {model.provider}
          </span>
          <span class="models-status">
            <span class="models-label">Status </span>
            <span class={`models-badge ${STATUS_CLASS[model.status]}`}>{model.status}</span>
            {model.status === "deprecated" && model.shutdown_date && (
              <span class="models-small models-successor"> until {model.shutdown_date}</span>
            )}
            {model.successor && model.status !== "active" && (
              <span class="models-small models-successor">
                {" "}
                successor <code>{model.successor}</code>
              </span>
            )}
          </span>
          <span class={`models-configured-cell ${model.configured ? "status-ok" : "muted"}`}>
            {model.configured ? "configured" : "no credentials"}
          </span>
          <span class="models-sizes">
            <span class="models-label">Sizes </span>
            {sizeText(model.sizes, true)}
          </span>
          <span class="models-price">{priceSummary(model.pricing)}</span>
        </summary>
        <ModelDetails model={model} />
      </details>
    </li>
  );
}

function ModelDetails({ model }: { model: CatalogModel }) {
  const prices = model.pricing?.per_image ?? [];
  const tokens = model.pricing?.per_million_tokens;
  return (
    <div class="models-details">
      {model.description && <p>{model.description}</p>}
      {model.warnings.map((warning) => (
        <p class="status-warn" key={warning}>
          {warning}
        </p>
      ))}
      <dl class="models-facts">
        <dt>Sizes</dt>
        <dd>{sizeText(model.sizes)}</dd>
        {model.qualities && model.qualities.length > 0 && (
          <>
            <dt>Qualities</dt>
            <dd>{model.qualities.join(", ")}</dd>
          </>
        )}
        {model.max_per_call && (
          <>
            <dt>Images per call</dt>
            <dd>up to {model.max_per_call}</dd>
          </>
        )}
        <dt>Edits</dt>
        <dd>
          {model.edits
            ? `up to ${model.edits.max_images} images${model.edits.mask ? ", mask" : ""}`
            : "no"}
        </dd>
        {model.shutdown_date && (
          <>
            <dt>Shutdown</dt>
            <dd>
              {model.shutdown_date}
              {model.successor &&
                (model.use_successor === false
                  ? " (then refused)"
                  : `, then served by ${model.successor}`)}
            </dd>
          </>
        )}
        <dt>Origin</dt>
        <dd>
          {model.origin}
          {model.checked && `, checked ${model.checked}`}
        </dd>
        {model.source && (
          <>
            <dt>Source</dt>
            <dd class="models-small">{model.source}</dd>
          </>
        )}
      </dl>
      {prices.length > 0 && (
        <table class="models-prices">
          <caption>Price per image</caption>
          <thead>
            <tr>
              <th scope="col">Size</th>
              <th scope="col">Quality</th>
              <th scope="col" class="number">
                USD
              </th>
            </tr>
          </thead>
          <tbody>
            {prices.map((row) => (
              <tr key={`${row.size} ${row.quality}`}>
                <td>{row.size === "*" ? "any" : row.size}</td>
                <td>{row.quality === "*" ? "any" : row.quality}</td>
                <td class="number">{row.usd === 0 ? "free" : usd(row.usd)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {tokens && (
        <p>
          Tokens per million: text in {usd(tokens.text_input)}, image in {usd(tokens.image_input)},
          out {usd(tokens.output)}.
        </p>
      )}
    </div>
  );
}
