/**
 * The filter registry: WebAssembly filters and transforms stored as
 * `name@version`, immutable once stored (docs/filters.md, "Versions and the
 * registry"). The HTTP API and `eddy filters` store and read modules here; the
 * broker loads them into a FilterSandbox by reference.
 *
 * On disk, under the directory it is opened on (the broker's `<dataDir>/filters`):
 *
 *   <name>/<version>.wasm    the module, byte for byte as uploaded
 *   <name>/<version>.json    its metadata; the version exists once this file does
 *   <name>/history.json      the highest version the name has had, written before a delete
 *   <name>/.tmp-<hex>        a write under way
 *
 * A put checks the module first (nothing is written for a module the host
 * would refuse), then writes the .wasm and the .json each to a temp file,
 * fsynced and renamed into place, fsyncing the directory after each, so the
 * metadata never names a module that is not wholly on disk. A delete records
 * the history, removes the .json (the version is gone), then the .wasm. At
 * open, temp files, modules without metadata (a put or a delete cut short) and
 * name directories holding nothing are removed. Mutations run one at a time;
 * one process owns the directory.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BrokerError } from '../protocol/index.js';
import {
  TEMP_PREFIX,
  isNotFound,
  removeIfPresent,
  storageError,
  syncDirectory,
  writeFileDurably,
} from './registry/files.js';
import {
  FILTER_VERSION_MAX,
  checkFilterName,
  formatFilterRef,
  invalidFilterName,
  invalidFilterVersion,
  parseFilterRef,
} from './registry/ref.js';
import { filterKinds, type FilterKind } from './wasm/abi.js';
import { FilterError, isFilterError } from './wasm/errors.js';
import { filterLimits, type FilterLimits } from './wasm/limits.js';
import { checkModule } from './wasm/module-check.js';

export {
  FILTER_NAME_LENGTH_MAX,
  FILTER_VERSION_MAX,
  formatFilterRef,
  invalidFilterName,
  parseFilterRef,
  type FilterRef,
} from './registry/ref.js';

/** Most versions stored under one name unless the registry is opened with another `versionsMax`. */
export const defaultVersionsMax = 100;

export interface FilterRegistryOptions {
  /**
   * The host's limits, which modules are checked against (`moduleBytesMax` caps
   * a stored module, `memoryPagesMax` its memory): pass the sandbox's, so that
   * what is stored can be loaded. Default `defaultFilterLimits`.
   */
  readonly limits?: Partial<FilterLimits>;
  /** Most versions stored under one name; more are refused with FILTER_TOO_MANY_VERSIONS. Default 100. */
  readonly versionsMax?: number;
}

export interface FilterDescription {
  readonly name: string;
  readonly version: number;
  /** `name@version`: the id to load it under, and what a subscription names. */
  readonly ref: string;
  readonly kind: FilterKind;
  /** SHA-256 of the module, lower-case hex. */
  readonly sha256: string;
  readonly sizeBytes: number;
  /** When it was stored: ISO 8601, UTC. */
  readonly createdAt: string;
}

export interface StoredFilter extends FilterDescription {
  /** The module, read from disk and checked against `sizeBytes` and `sha256`. */
  readonly bytes: Uint8Array;
}

export interface PutFilterOptions {
  readonly kind: FilterKind;
  /** Store as this version rather than the next one; it must be above every version the name has had. */
  readonly version?: number;
}

export interface PutFilterResult extends FilterDescription {
  /**
   * False when nothing was written: the module (bytes and kind) was the name's
   * latest version already or, with an explicit `version`, was that version.
   */
  readonly created: boolean;
}

export interface FilterVersions {
  readonly name: string;
  readonly latestVersion: number;
  /** Oldest first. */
  readonly versions: readonly FilterDescription[];
}

const FORMAT = 1;
const HISTORY_FILE = 'history.json';
const VERSION_FILE = /^([1-9][0-9]*)\.(wasm|json)$/;
const SHA256 = /^[0-9a-f]{64}$/;

interface StoredMetadata {
  readonly format: number;
  readonly name: string;
  readonly version: number;
  readonly kind: FilterKind;
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly createdAt: string;
}

interface StoredHistory {
  readonly format: number;
  readonly name: string;
  readonly highestVersion: number;
}

interface NameEntry {
  readonly dir: string;
  readonly versions: Map<number, FilterDescription>;
  /** The highest version the name has had: stored now, or recorded in history.json. */
  highestVersion: number;
  /** What history.json holds (0 without one). */
  recordedVersion: number;
}

export class FilterRegistry {
  readonly dir: string;
  readonly limits: FilterLimits;
  readonly versionsMax: number;
  readonly #names: Map<string, NameEntry>;
  /** The mutation running or last queued; puts and deletes run one at a time. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, limits: FilterLimits, versionsMax: number, names: Map<string, NameEntry>) {
    this.dir = dir;
    this.limits = limits;
    this.versionsMax = versionsMax;
    this.#names = names;
  }

  /**
   * Opens the registry over `dir` (created if missing), reading every stored
   * version's metadata and clearing what a crash left. Rejects with a
   * BrokerError CORRUPT_DATA when metadata cannot be read or does not match
   * its module: a stored filter is never skipped silently.
   */
  static async open(dir: string, options: FilterRegistryOptions = {}): Promise<FilterRegistry> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty path');
    const limits = filterLimits(options.limits);
    const versionsMax = options.versionsMax ?? defaultVersionsMax;
    if (!Number.isSafeInteger(versionsMax) || versionsMax < 1)
      throw new RangeError(`versionsMax must be a positive integer, got ${String(versionsMax)}`);
    const root = path.resolve(dir);
    await fs.mkdir(root, { recursive: true });
    return new FilterRegistry(root, limits, versionsMax, await loadNames(root));
  }

  /**
   * Checks `bytes` as a module of `kind` (checkModule, with the registry's
   * limits) and stores it as the name's next version, or as `version`. Rejects
   * with the check's FilterError (FILTER_INVALID_MODULE, …) storing nothing,
   * FILTER_INVALID_REF for a bad name or version, FILTER_VERSION_EXISTS,
   * FILTER_TOO_MANY_VERSIONS, or a BrokerError STORAGE_FULL. A module identical
   * to the latest version (bytes and kind) is not stored again: that version is
   * returned with `created: false`, so a retried upload adds nothing.
   */
  put(name: string, bytes: Uint8Array, options: PutFilterOptions): Promise<PutFilterResult> {
    if (typeof name !== 'string') throw new TypeError('a filter name must be a string');
    if (!(bytes instanceof Uint8Array)) throw new TypeError('the module must be a Uint8Array');
    if (!filterKinds.includes(options?.kind))
      throw new TypeError(`kind must be one of ${filterKinds.join(', ')}`);
    if (options.version !== undefined && typeof options.version !== 'number')
      throw new TypeError('version must be a number');
    return this.#put(name, bytes.slice(), options.kind, options.version);
  }

  /** The version `ref` names (`name@version`, or `name` for the latest) with its bytes. */
  get(ref: string): Promise<StoredFilter> {
    if (typeof ref !== 'string') throw new TypeError('a filter reference must be a string');
    return this.#read(ref);
  }

  /**
   * The version `ref` names, without its bytes. Throws a FilterError
   * FILTER_INVALID_REF for a malformed reference, FILTER_NOT_FOUND for one
   * naming nothing stored.
   */
  describe(ref: string): FilterDescription {
    const { name, version } = parseFilterRef(ref);
    const entry = this.#names.get(name);
    const found =
      entry === undefined ? undefined : version === null ? latestOf(entry) : entry.versions.get(version);
    if (found === undefined) throw notFound(ref, entry);
    return found;
  }

  /** Every name with a stored version, sorted, with its versions oldest first. */
  list(): FilterVersions[] {
    const names: FilterVersions[] = [];
    for (const [name, entry] of [...this.#names].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const versions = sortedVersions(entry);
      const latest = versions.at(-1);
      if (latest !== undefined) names.push({ name, latestVersion: latest.version, versions });
    }
    return names;
  }

  /**
   * Deletes the version `name@version` names, or every version of `name` (a
   * bare name here means all of them, not the latest). Resolves to what was
   * deleted, oldest first. Version numbers are never given out again, even
   * after every version of a name is deleted.
   */
  delete(ref: string): Promise<FilterDescription[]> {
    if (typeof ref !== 'string') throw new TypeError('a filter reference must be a string');
    return this.#exclusive(() => this.#delete(ref));
  }

  async #put(
    name: string,
    bytes: Uint8Array,
    kind: FilterKind,
    version: number | undefined,
  ): Promise<PutFilterResult> {
    checkFilterName(name);
    if (version !== undefined) {
      const reason = invalidFilterVersion(version);
      if (reason !== null)
        throw new FilterError('FILTER_INVALID_REF', `invalid version for filter "${name}": ${reason}`, {
          filterId: name,
        });
    }
    try {
      await checkModule(bytes, kind, this.limits);
    } catch (error) {
      if (!isFilterError(error)) throw error;
      throw new FilterError(error.errorName, error.message, { filterId: name, cause: error.cause });
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    return this.#exclusive(() => this.#store(name, bytes, kind, sha256, version));
  }

  async #store(
    name: string,
    bytes: Uint8Array,
    kind: FilterKind,
    sha256: string,
    explicit: number | undefined,
  ): Promise<PutFilterResult> {
    const existing = this.#names.get(name);
    const same = (stored: FilterDescription | undefined): boolean =>
      stored !== undefined && stored.sha256 === sha256 && stored.kind === kind;
    if (explicit === undefined) {
      const latest = existing === undefined ? undefined : latestOf(existing);
      if (latest !== undefined && same(latest)) return { ...latest, created: false };
    } else if (existing !== undefined) {
      const stored = existing.versions.get(explicit);
      if (stored !== undefined && same(stored)) return { ...stored, created: false };
      if (stored !== undefined)
        throw versionExists(
          name,
          explicit,
          'is stored already with other bytes or kind (versions are immutable)',
        );
      if (explicit <= existing.highestVersion)
        throw versionExists(
          name,
          explicit,
          `is not above version ${existing.highestVersion}, which ${name} has had (versions are never reused or filled in)`,
        );
    }
    if (existing !== undefined && existing.versions.size >= this.versionsMax)
      throw new FilterError(
        'FILTER_TOO_MANY_VERSIONS',
        `filter ${name} has ${existing.versions.size} versions, the most allowed (${this.versionsMax}); delete old versions first`,
        { filterId: name },
      );
    const version = explicit ?? (existing?.highestVersion ?? 0) + 1;
    if (version > FILTER_VERSION_MAX)
      throw new FilterError('FILTER_TOO_MANY_VERSIONS', `filter ${name} has used every version number`, {
        filterId: name,
      });

    const entry = existing ?? (await this.#addName(name));
    const description: FilterDescription = Object.freeze({
      name,
      version,
      ref: formatFilterRef(name, version),
      kind,
      sha256,
      sizeBytes: bytes.length,
      createdAt: new Date().toISOString(),
    });
    const stored: StoredMetadata = {
      format: FORMAT,
      name,
      version,
      kind,
      sha256,
      sizeBytes: bytes.length,
      createdAt: description.createdAt,
    };
    const moduleFile = path.join(entry.dir, `${version}.wasm`);
    const metadataFile = path.join(entry.dir, `${version}.json`);
    try {
      await writeFileDurably(moduleFile, bytes);
      await syncDirectory(entry.dir); // the module is durable before the metadata that makes it a version
      await writeFileDurably(metadataFile, JSON.stringify(stored, null, 2) + '\n');
      await syncDirectory(entry.dir);
    } catch (error) {
      // Undo what may be there; whatever stays is cleared at the next open.
      await removeIfPresent(metadataFile).catch(() => undefined);
      await removeIfPresent(moduleFile).catch(() => undefined);
      throw storageError(error, moduleFile);
    }
    entry.versions.set(version, description);
    entry.highestVersion = Math.max(entry.highestVersion, version);
    return { ...description, created: true };
  }

  async #addName(name: string): Promise<NameEntry> {
    const dir = path.join(this.dir, name);
    try {
      await fs.mkdir(dir);
      await syncDirectory(this.dir);
    } catch (error) {
      throw storageError(error, dir);
    }
    const entry: NameEntry = { dir, versions: new Map(), highestVersion: 0, recordedVersion: 0 };
    this.#names.set(name, entry);
    return entry;
  }

  async #read(ref: string): Promise<StoredFilter> {
    const description = this.describe(ref);
    const file = path.join(this.dir, description.name, `${description.version}.wasm`);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch (error) {
      // Deleted since it was described.
      if (isNotFound(error)) throw notFound(ref, this.#names.get(description.name));
      throw error;
    }
    if (
      bytes.length !== description.sizeBytes ||
      createHash('sha256').update(bytes).digest('hex') !== description.sha256
    )
      throw new BrokerError(
        'CORRUPT_DATA',
        `${file} does not match the size and SHA-256 recorded for ${description.ref}: the stored module is damaged`,
      );
    return { ...description, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  }

  async #delete(ref: string): Promise<FilterDescription[]> {
    const { name, version } = parseFilterRef(ref);
    const entry = this.#names.get(name);
    const doomed: FilterDescription[] = [];
    if (entry !== undefined && version === null) doomed.push(...sortedVersions(entry));
    const one = version === null ? undefined : entry?.versions.get(version);
    if (one !== undefined) doomed.push(one);
    if (entry === undefined || doomed.length === 0) throw notFound(ref, entry);
    if (entry.recordedVersion < entry.highestVersion) {
      // Durable before any version goes, so that its number is never given out again.
      const history: StoredHistory = { format: FORMAT, name, highestVersion: entry.highestVersion };
      await writeFileDurably(path.join(entry.dir, HISTORY_FILE), JSON.stringify(history, null, 2) + '\n');
      await syncDirectory(entry.dir);
      entry.recordedVersion = entry.highestVersion;
    }
    for (const description of doomed) {
      await fs.rm(path.join(entry.dir, `${description.version}.json`), { force: true });
      entry.versions.delete(description.version);
    }
    await syncDirectory(entry.dir);
    // A module left behind by a crash here has no metadata: the next open removes it.
    for (const description of doomed)
      await removeIfPresent(path.join(entry.dir, `${description.version}.wasm`));
    return doomed;
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

function latestOf(entry: NameEntry): FilterDescription | undefined {
  let latest: FilterDescription | undefined;
  for (const description of entry.versions.values())
    if (latest === undefined || description.version > latest.version) latest = description;
  return latest;
}

function sortedVersions(entry: NameEntry): FilterDescription[] {
  return [...entry.versions.values()].sort((a, b) => a.version - b.version);
}

function notFound(ref: string, entry: NameEntry | undefined): FilterError {
  const latest = entry === undefined ? undefined : latestOf(entry);
  const message =
    latest === undefined
      ? `no filter named "${parseFilterRef(ref).name}" is stored`
      : `filter ${ref} is not stored; the latest version is ${latest.ref}`;
  return new FilterError('FILTER_NOT_FOUND', message, { filterId: ref });
}

function versionExists(name: string, version: number, reason: string): FilterError {
  const ref = formatFilterRef(name, version);
  return new FilterError('FILTER_VERSION_EXISTS', `filter ${ref} ${reason}`, { filterId: ref });
}

function corrupt(file: string, reason: string, cause?: unknown): BrokerError {
  return new BrokerError('CORRUPT_DATA', `${file} ${reason}`, cause === undefined ? {} : { cause });
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (error) {
    throw corrupt(file, 'cannot be read as JSON', error);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw corrupt(file, 'does not hold a JSON object');
  return value as Record<string, unknown>;
}

async function readMetadata(dir: string, name: string, version: number): Promise<FilterDescription> {
  const file = path.join(dir, `${version}.json`);
  const stored = await readJson(file);
  const { kind, sha256, sizeBytes, createdAt } = stored;
  if (
    stored['format'] !== FORMAT ||
    stored['name'] !== name ||
    stored['version'] !== version ||
    !filterKinds.includes(kind as FilterKind) ||
    typeof sha256 !== 'string' ||
    !SHA256.test(sha256) ||
    typeof sizeBytes !== 'number' ||
    !Number.isSafeInteger(sizeBytes) ||
    sizeBytes < 0 ||
    typeof createdAt !== 'string' ||
    Number.isNaN(Date.parse(createdAt))
  )
    throw corrupt(file, `is not a format ${FORMAT} description of filter ${formatFilterRef(name, version)}`);
  const moduleFile = path.join(dir, `${version}.wasm`);
  const { size } = await fs.stat(moduleFile);
  if (size !== sizeBytes)
    throw corrupt(
      moduleFile,
      `is ${size} bytes; its metadata says ${sizeBytes}: the stored module is damaged`,
    );
  return Object.freeze({
    name,
    version,
    ref: formatFilterRef(name, version),
    kind: kind as FilterKind,
    sha256,
    sizeBytes,
    createdAt,
  });
}

async function readHistory(dir: string, name: string): Promise<number> {
  const file = path.join(dir, HISTORY_FILE);
  const stored = await readJson(file);
  const highest = stored['highestVersion'];
  if (
    stored['format'] !== FORMAT ||
    stored['name'] !== name ||
    typeof highest !== 'number' ||
    invalidFilterVersion(highest) !== null
  )
    throw corrupt(file, `is not a format ${FORMAT} version history of filter ${name}`);
  return highest;
}

/** One name's directory, cleared of what a crash left; null when nothing of it remains. */
async function loadName(root: string, name: string): Promise<NameEntry | null> {
  const dir = path.join(root, name);
  const modules = new Set<number>();
  const metadata = new Set<number>();
  let recordedVersion = 0;
  let changed = false;
  let others = 0;
  for (const file of await fs.readdir(dir)) {
    const match = VERSION_FILE.exec(file);
    const version = match === null ? NaN : Number(match[1]);
    if (file.startsWith(TEMP_PREFIX)) {
      await fs.rm(path.join(dir, file), { recursive: true, force: true });
      changed = true;
    } else if (file === HISTORY_FILE) recordedVersion = await readHistory(dir, name);
    else if (match !== null && invalidFilterVersion(version) === null)
      (match[2] === 'wasm' ? modules : metadata).add(version);
    else others++;
  }
  const versions = new Map<number, FilterDescription>();
  for (const version of [...metadata].sort((a, b) => a - b)) {
    if (!modules.has(version))
      throw corrupt(path.join(dir, `${version}.json`), 'describes a module that is not stored');
    versions.set(version, await readMetadata(dir, name, version));
  }
  for (const version of modules)
    if (!metadata.has(version)) {
      // Written by a put that did not finish, or left by a delete that did not.
      await removeIfPresent(path.join(dir, `${version}.wasm`));
      changed = true;
    }
  if (changed) await syncDirectory(dir);
  if (versions.size === 0 && recordedVersion === 0 && others === 0) {
    await fs.rmdir(dir);
    return null;
  }
  const highestVersion = Math.max(recordedVersion, ...versions.keys());
  return { dir, versions, highestVersion, recordedVersion };
}

/** Every name directory under `root`; entries that cannot be filter names are not ours and are left alone. */
async function loadNames(root: string): Promise<Map<string, NameEntry>> {
  const names = new Map<string, NameEntry>();
  let changed = false;
  for (const entry of await fs.readdir(root, { withFileTypes: true })) {
    if (entry.name.startsWith(TEMP_PREFIX)) {
      await fs.rm(path.join(root, entry.name), { recursive: true, force: true });
      changed = true;
      continue;
    }
    if (!entry.isDirectory() || invalidFilterName(entry.name) !== null) continue;
    const loaded = await loadName(root, entry.name);
    if (loaded === null) changed = true;
    else names.set(entry.name, loaded);
  }
  if (changed) await syncDirectory(root);
  return names;
}
