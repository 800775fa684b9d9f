/**
 * `/v1/filters`: uploading WebAssembly filters and transforms into the
 * registry (`src/filters/registry.ts`), as immutable `name@version`s, and
 * listing, describing and deleting them.
 *
 *   PUT    /v1/filters/{name}?kind=filter|transform[&version=N]   body: the .wasm bytes
 *   GET    /v1/filters                                            every name and its versions
 *   GET    /v1/filters/{name}[@version]                           one version (the latest by default)
 *   DELETE /v1/filters/{name}[@version]                           one version, or every version of the name
 *
 * A transform version a topic or a routing rule runs is not deleted
 * (INVALID_REQUEST naming them): after a restart it could not be loaded, and
 * every publish it serves would be refused.
 */
import { BrokerError } from '../protocol/index.js';
import {
  filterKinds,
  parseFilterRef,
  type FilterDescription,
  type FilterKind,
  type FilterRegistry,
} from '../filters/index.js';
import { json, respond, withBody, pathParameter } from './http-reply.js';
import type { TemplatedApp } from './uws.js';

/** What a client sees of a stored version: the description, without the bytes. */
const view = (filter: FilterDescription): FilterDescription => ({
  name: filter.name,
  version: filter.version,
  ref: filter.ref,
  kind: filter.kind,
  sha256: filter.sha256,
  sizeBytes: filter.sizeBytes,
  createdAt: filter.createdAt,
});

/** A pinned transform version and what runs it (`topic orders`, `routing rule set audit`). */
export interface PinnedTransform {
  readonly ref: string;
  readonly by: string;
}

/** Which of `pinned` a delete of `ref` would take away; none for a malformed ref (the registry says why). */
function usersOf(ref: string, pinned: readonly PinnedTransform[]): PinnedTransform[] {
  let parsed;
  try {
    parsed = parseFilterRef(ref);
  } catch {
    return [];
  }
  const { name, version } = parsed;
  return pinned.filter((user) =>
    version === null ? user.ref.startsWith(`${name}@`) : user.ref === `${name}@${version}`,
  );
}

export function attachFiltersApi(
  app: TemplatedApp,
  registry: FilterRegistry,
  maxBodyBytes: number,
  pinnedBy: () => PinnedTransform[],
): void {
  app.put('/v1/filters/:name', (res, req) => {
    // The request object is only valid until this handler returns: read everything now.
    const name = pathParameter(req, 0);
    const kind = req.getQuery('kind') || 'filter';
    const versionText = req.getQuery('version') ?? '';
    withBody(res, maxBodyBytes, async (body) => {
      if (!(filterKinds as readonly string[]).includes(kind))
        throw new BrokerError('INVALID_REQUEST', `kind must be filter or transform, got "${kind}"`);
      const version = versionText === '' ? undefined : Number(versionText);
      if (version !== undefined && !Number.isSafeInteger(version))
        throw new BrokerError('INVALID_REQUEST', `version must be an integer, got "${versionText}"`);
      const stored = await registry.put(name, body, {
        kind: kind as FilterKind,
        ...(version === undefined ? {} : { version }),
      });
      return json(stored.created ? 201 : 200, { ...view(stored), created: stored.created });
    });
  });

  app.get('/v1/filters', (res) => respond(res, () => json(200, { filters: registry.list() })));

  app.get('/v1/filters/:ref', (res, req) => {
    const ref = pathParameter(req, 0);
    respond(res, () => json(200, view(registry.describe(ref))));
  });

  app.del('/v1/filters/:ref', (res, req) => {
    const ref = pathParameter(req, 0);
    respond(res, async () => {
      const users = usersOf(ref, pinnedBy());
      if (users.length > 0)
        throw new BrokerError(
          'INVALID_REQUEST',
          `${ref} is in use by ${users.map((user) => `${user.by} (${user.ref})`).join(', ')}: attach another version first`,
        );
      return json(200, { deleted: (await registry.delete(ref)).map(view) });
    });
  });
}
