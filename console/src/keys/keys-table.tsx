/** Every key, newest first; revoked ones only when asked for. */
import type { Session } from "../session.ts";
import { KEY_COLUMNS, KeyRow } from "./key-row.tsx";
import type { ApiKey, IssuedKey } from "./types.ts";

interface Props {
  session: Session;
  keys: ApiKey[];
  showRevoked: boolean;
  modelIds: string[];
  onChanged: (key: ApiKey) => void;
  onRotated: (key: IssuedKey) => void;
}

export function KeysTable({ session, keys, showRevoked, modelIds, onChanged, onRotated }: Props) {
  const shown = keys
    .filter((key) => showRevoked || key.revoked_at === null)
    .sort((a, b) => b.created_at - a.created_at);
  return (
    <div class="table-wrap">
      <table class="keys-table">
        <caption class="keys-sr-only">API keys</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col" class="number">
              Balance
            </th>
            <th scope="col">Models</th>
            <th scope="col" class="number">
              <abbr title="requests per minute / images per minute">RPM / IPM</abbr>
            </th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">Status</th>
            <th scope="col">
              <span class="keys-sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {shown.length === 0 && (
            <tr>
              <td colSpan={KEY_COLUMNS} class="muted">
                No keys yet{keys.length > 0 ? " that are not revoked" : ""}. The admin key from the
                environment (ADMIN_KEY) is not listed here.
              </td>
            </tr>
          )}
          {shown.map((key) => (
            <KeyRow
              key={key.id}
              session={session}
              apiKey={key}
              modelIds={modelIds}
              onChanged={onChanged}
              onRotated={onRotated}
            />
          ))}
        </tbody>
      </table>
    </div>
  );
}
