/**
 * `/v1/filters`: uploading WebAssembly filters and transforms into the
 * registry (`src/filters/registry.ts`), as immutable `name@version`s, and
 * listing, describing and deleting them.
 *
 *   PUT    /v1/filters/{name}?kind=filter|transform[&version=N]   body: the .wasm bytes
 *   GET    /v1/filters                                            every name and its versions
 *   GET    /v1/filters/{name}[@version]                           one version (the latest by default)
 *   DELETE /v1/filters/{name}[@version]                           one version, or every version of the name
 */
import { BrokerError } from '../protocol/index.js';
import {
  filterKinds,
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

export function attachFiltersApi(app: TemplatedApp, registry: FilterRegistry, maxBodyBytes: number): void {
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
    respond(res, async () => json(200, { deleted: (await registry.delete(ref)).map(view) }));
  });
}
