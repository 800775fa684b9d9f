/**
 * Structure-aware mutation of FlatBuffer frames. `mapBuffer` walks a valid
 * frame with the generated layout (src/protocol/generated/layout.ts, the same
 * one the verifier walks) and notes where each structural element lies: root
 * and field offsets, vtable offsets and sizes, vtable entries, vector and
 * string lengths, union tags, scalars, string bytes, and the event block nested
 * in a PublishBatch. `FrameMutator` then damages exactly those places (an
 * offset pointed at another table, a union tag naming another message, a
 * vector claiming 2^32-1 elements, a field dropped from its vtable, a string
 * losing its NUL), besides blind bit flips, truncation, extension, splicing two
 * frames, hostile field values re-encoded validly, DAG-shared offsets that
 * multiply the verifier's work, and purely random bytes.
 *
 * Everything is drawn from one seeded generator: the same seed gives the same
 * frames, so a failure replays from the seed the test prints.
 */
import * as flatbuffers from 'flatbuffers';
import * as wire from '../../../src/protocol/generated/eddy.js';
import { tables, unions } from '../../../src/protocol/generated/layout.js';
import { encodeFrame, type Message } from '../../../src/protocol/index.js';
import { publishBlock } from '../../helpers/publish-batch.js';
import { seededRandom } from '../../helpers/random.js';
import type { Seed } from './seed-frames.js';

export type LandmarkKind =
  | 'uoffset'
  | 'soffset'
  | 'vtable-size'
  | 'table-size'
  | 'vtable-entry'
  | 'length'
  | 'union-tag'
  | 'scalar'
  | 'text';

/** A structural element of a buffer: what it is, where, and how many bytes. */
export interface Landmark {
  readonly kind: LandmarkKind;
  readonly at: number;
  readonly bytes: number;
  /** For a union tag: how many members the union has. */
  readonly members?: number;
}

interface LooseField {
  readonly name: string;
  readonly slot: number;
  readonly kind: 'scalar' | 'struct' | 'string' | 'table' | 'union' | 'vector';
  readonly bytes?: number;
  readonly table?: string;
  readonly union?: string;
  readonly element?: 'scalar' | 'struct' | 'string' | 'table';
}

const layouts = tables as unknown as Readonly<Record<string, readonly LooseField[]>>;
const unionMembers = unions as unknown as Readonly<Record<string, readonly string[]>>;

/**
 * The landmarks of a valid buffer whose root is `root`. Stops quietly where the
 * bytes do not hold what the layout says (a checkout whose generated code is
 * behind the schema): the landmarks found so far are still right.
 */
export function mapBuffer(bytes: Uint8Array, root = 'Frame'): Landmark[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Landmark[] = [];
  const seenTables = new Set<number>();

  const table = (position: number, name: string, depth: number): void => {
    if (depth > 16 || seenTables.has(position) || position + 4 > bytes.length) return;
    seenTables.add(position);
    out.push({ kind: 'soffset', at: position, bytes: 4 });
    const vtable = position - view.getInt32(position, true);
    if (vtable < 0 || vtable + 4 > bytes.length) return;
    out.push({ kind: 'vtable-size', at: vtable, bytes: 2 }, { kind: 'table-size', at: vtable + 2, bytes: 2 });
    const slots = (view.getUint16(vtable, true) - 4) >> 1;
    for (let i = 0; i < slots; i++) out.push({ kind: 'vtable-entry', at: vtable + 4 + 2 * i, bytes: 2 });
    const slot = (i: number): number => (i < slots ? view.getUint16(vtable + 4 + 2 * i, true) : 0);
    for (const field of layouts[name] ?? []) {
      if (field.kind === 'union') {
        const tagAt = slot(field.slot);
        const valueAt = slot(field.slot + 1);
        const members = unionMembers[field.union ?? ''] ?? [];
        if (tagAt !== 0)
          out.push({ kind: 'union-tag', at: position + tagAt, bytes: 1, members: members.length });
        if (tagAt === 0 || valueAt === 0) continue;
        const tag = bytes[position + tagAt] ?? 0;
        out.push({ kind: 'uoffset', at: position + valueAt, bytes: 4 });
        const member = members[tag - 1];
        if (member !== undefined) table(follow(position + valueAt), member, depth + 1);
        continue;
      }
      const at = slot(field.slot);
      if (at === 0) continue;
      const where = position + at;
      if (field.kind === 'scalar' || field.kind === 'struct') {
        out.push({ kind: 'scalar', at: where, bytes: field.bytes ?? 1 });
        continue;
      }
      out.push({ kind: 'uoffset', at: where, bytes: 4 });
      const target = follow(where);
      if (target + 4 > bytes.length) continue;
      if (field.kind === 'string') string(target);
      else if (field.kind === 'table') table(target, field.table ?? '', depth + 1);
      else vector(target, field, name, depth);
    }
  };

  const follow = (at: number): number => at + view.getUint32(at, true);

  const string = (position: number): void => {
    const length = view.getUint32(position, true);
    out.push({ kind: 'length', at: position, bytes: 4 });
    if (length > 0) out.push({ kind: 'text', at: position + 4, bytes: length + 1 });
  };

  const vector = (position: number, field: LooseField, owner: string, depth: number): void => {
    const count = view.getUint32(position, true);
    out.push({ kind: 'length', at: position, bytes: 4 });
    const start = position + 4;
    if (field.element === 'scalar' || field.element === 'struct') {
      const width = field.bytes ?? 1;
      // The event block of a PublishBatch is a FlatBuffer in its own right: map it too.
      if (owner === 'PublishBatch' && field.name === 'events') {
        nested(bytes.subarray(start, start + count), start);
        return;
      }
      for (let i = 0; i < Math.min(count, 8); i++)
        out.push({ kind: 'scalar', at: start + i * width, bytes: width });
      return;
    }
    for (let i = 0; i < count && start + 4 * i + 4 <= bytes.length; i++) {
      const at = start + 4 * i;
      out.push({ kind: 'uoffset', at, bytes: 4 });
      if (field.element === 'string') string(follow(at));
      else table(follow(at), field.table ?? '', depth + 1);
    }
  };

  const nested = (block: Uint8Array, base: number): void => {
    if (block.length < 8) return;
    try {
      for (const landmark of mapBuffer(block, 'EventBatch'))
        out.push({ ...landmark, at: landmark.at + base });
    } catch {
      // A compressed block is not a FlatBuffer: its bytes still get blind mutations.
    }
  };

  try {
    out.push({ kind: 'uoffset', at: 0, bytes: 4 });
    table(follow(0), root, 1);
  } catch {
    // See above: a layout behind the bytes.
  }
  return out;
}

const INTERESTING_32 = [
  0, 1, 2, 3, 4, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000,
  0xfffffffc, 0xffffffff,
];
const INTERESTING_16 = [0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xff, 0x7ffe, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING_64 = [
  0n,
  1n,
  -1n,
  2n ** 31n,
  2n ** 32n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
  -(2n ** 53n) - 1n,
];
/** Bytes that break UTF-8 (lone continuation, overlong NUL, surrogate, past U+10FFFF) or the String rules (controls). */
const BAD_TEXT = [
  [0xff],
  [0x80],
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0x00],
  [0x01],
  [0x7f],
  [0xc2, 0x85],
];

/** Names of the mutation families, for the statistics a run prints. */
export const families = [
  'landmark',
  'bit-flip',
  'byte-set',
  'truncate',
  'extend',
  'splice',
  'chunk',
  'hostile-values',
  'shared-offsets',
  'random-bytes',
] as const;
export type Family = (typeof families)[number];

export interface Mutant {
  readonly family: Family;
  /** The seed it came from (a random frame has none). */
  readonly seed: string | null;
  readonly bytes: Uint8Array;
}

export interface MutatorOptions {
  /** Largest frame produced (extensions and splices are cut there). Default 64 KiB. */
  readonly maxBytes?: number;
  /** Largest vector the shared-offset family builds (its work grows with the square). Default 32. */
  readonly sharedMax?: number;
}

export class FrameMutator {
  readonly #next: () => number;
  readonly #seeds: readonly Seed[];
  readonly #maps: readonly Landmark[][];
  readonly #maxBytes: number;
  readonly #sharedMax: number;

  constructor(seed: number, seeds: readonly Seed[], options: MutatorOptions = {}) {
    if (seeds.length === 0) throw new RangeError('the mutator needs at least one seed frame');
    this.#next = seededRandom(seed);
    this.#seeds = seeds;
    this.#maps = seeds.map((s) => mapBuffer(s.bytes));
    this.#maxBytes = options.maxBytes ?? 64 * 1024;
    this.#sharedMax = options.sharedMax ?? 32;
  }

  /** A number in [0, n). */
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }

  chance(p: number): boolean {
    return this.#next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  /** The next mutant. */
  next(): Mutant {
    const roll = this.#next();
    if (roll < 0.08) return { family: 'random-bytes', seed: null, bytes: this.#randomBytes() };
    if (roll < 0.1) return { family: 'shared-offsets', seed: null, bytes: this.#shared() };
    const index = this.int(this.#seeds.length);
    const seed = this.#seeds[index] as Seed;
    if (roll < 0.2) return { family: 'hostile-values', seed: seed.type, bytes: this.#hostile(seed) };
    const bytes = seed.bytes.slice();
    const family = this.#damage(bytes, index);
    let result = family.bytes ?? bytes;
    // Sometimes a second, different kind of damage on top.
    if (this.chance(0.25)) result = this.#damage(result, index).bytes ?? result;
    return { family: family.family, seed: seed.type, bytes: result.subarray(0, this.#maxBytes) };
  }

  #damage(bytes: Uint8Array, index: number): { family: Family; bytes?: Uint8Array } {
    const roll = this.#next();
    const landmarks = this.#maps[index] as Landmark[];
    if (roll < 0.5 && landmarks.length > 0) {
      const count = 1 + this.int(3);
      for (let i = 0; i < count; i++) this.#landmark(bytes, this.pick(landmarks), landmarks);
      return { family: 'landmark' };
    }
    if (roll < 0.6) {
      for (let i = 0, n = 1 + this.int(4); i < n; i++) {
        const at = this.int(bytes.length);
        bytes[at] = (bytes[at] as number) ^ (1 << this.int(8));
      }
      return { family: 'bit-flip' };
    }
    if (roll < 0.67) {
      for (let i = 0, n = 1 + this.int(3); i < n; i++)
        bytes[this.int(bytes.length)] = this.pick([0, 0xff, 0x7f, 0x80, 1, this.int(256)]);
      return { family: 'byte-set' };
    }
    if (roll < 0.77) {
      // At a landmark (the cut lands on a structure boundary) or anywhere.
      const cut =
        landmarks.length > 0 && this.chance(0.5)
          ? this.pick(landmarks).at + this.int(2)
          : this.int(bytes.length);
      return { family: 'truncate', bytes: bytes.subarray(0, Math.min(cut, bytes.length)) };
    }
    if (roll < 0.84) {
      const extra = new Uint8Array(this.chance(0.8) ? 1 + this.int(64) : 1 + this.int(4096));
      if (this.chance(0.5)) for (let i = 0; i < extra.length; i++) extra[i] = this.int(256);
      return { family: 'extend', bytes: concat(bytes, extra) };
    }
    if (roll < 0.93) {
      const other = this.pick(this.#seeds).bytes;
      const head = bytes.subarray(0, this.int(bytes.length + 1));
      const tail = other.subarray(this.int(other.length + 1));
      if (this.chance(0.5)) return { family: 'splice', bytes: concat(head, tail) };
      // Overwrite a region in place: offsets stay put, what they point at changes.
      const out = bytes.slice();
      out.set(tail.subarray(0, Math.max(0, out.length - head.length)), head.length);
      return { family: 'splice', bytes: out };
    }
    // Delete or duplicate a chunk: every offset that spans it now points elsewhere.
    const from = this.int(bytes.length);
    const length = 1 + this.int(Math.min(16, bytes.length - from));
    const chunk = bytes.subarray(from, from + length);
    return {
      family: 'chunk',
      bytes: this.chance(0.5)
        ? concat(bytes.subarray(0, from), bytes.subarray(from + length))
        : concat(bytes.subarray(0, from + length), chunk, bytes.subarray(from + length)),
    };
  }

  #landmark(bytes: Uint8Array, landmark: Landmark, all: readonly Landmark[]): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { at } = landmark;
    if (at + landmark.bytes > bytes.length) return;
    switch (landmark.kind) {
      case 'uoffset': {
        const current = view.getUint32(at, true);
        const options = [
          () => current + (this.int(17) - 8),
          () => current + (this.chance(0.5) ? 4 : -4),
          () => this.pick(INTERESTING_32),
          () => bytes.length - at,
          () => bytes.length - at - 4,
          // Retarget at another structure: a table of another type, a string, a vector, a vtable.
          () => this.pick(all).at - at,
        ];
        view.setUint32(at, this.pick(options)() >>> 0, true);
        return;
      }
      case 'soffset': {
        const current = view.getInt32(at, true);
        const other = this.pick(all.filter((l) => l.kind === 'vtable-size'));
        const options = [
          () => current + (this.int(9) - 4),
          () => 0,
          () => (other === undefined ? current : at - other.at),
          () => this.pick([0x7fffffff, -0x80000000, -4, at + 2, -(bytes.length - at)]),
        ];
        view.setInt32(at, this.pick(options)() | 0, true);
        return;
      }
      case 'vtable-size':
      case 'table-size':
      case 'vtable-entry': {
        const current = view.getUint16(at, true);
        const options = [
          () => this.pick(INTERESTING_16),
          () => current + (this.int(9) - 4),
          () => (landmark.kind === 'vtable-entry' ? 0 : current * 2),
          () => this.int(0x10000),
        ];
        view.setUint16(at, this.pick(options)() & 0xffff, true);
        return;
      }
      case 'length': {
        const current = view.getUint32(at, true);
        const remaining = bytes.length - at - 4;
        const options = [
          () => this.pick(INTERESTING_32),
          () => current + 1,
          () => current - 1,
          () => remaining,
          () => remaining + 1,
          () => (remaining >> 2) + 1,
          () => (remaining >> 3) + 1,
          () => 1 << (16 + this.int(15)),
        ];
        view.setUint32(at, this.pick(options)() >>> 0, true);
        return;
      }
      case 'union-tag': {
        const members = landmark.members ?? 33;
        bytes[at] =
          this.pick([0, 1 + this.int(members), members + 1, members + 1 + this.int(200), 255]) & 0xff;
        return;
      }
      case 'scalar':
        this.#scalar(view, at, landmark.bytes);
        return;
      case 'text': {
        const options = [
          // The terminating NUL overwritten: the string runs on into whatever follows.
          () => (bytes[at + landmark.bytes - 1] = 0x41),
          // A NUL inside the string.
          () => (bytes[at + this.int(landmark.bytes)] = 0),
          () => {
            // Bad bytes inside the string (before its NUL), as many as fit.
            const start = at + this.int(landmark.bytes - 1);
            const bad = this.pick(BAD_TEXT);
            for (let i = 0; i < bad.length && start + i < at + landmark.bytes - 1; i++)
              bytes[start + i] = bad[i]!;
          },
        ];
        this.pick(options)();
        return;
      }
    }
  }

  #scalar(view: DataView, at: number, width: number): void {
    if (width === 1) view.setUint8(at, this.pick([0, 1, 2, 3, 4, 7, 0x7f, 0x80, 0xff, this.int(256)]));
    else if (width === 2) view.setUint16(at, this.pick(INTERESTING_16), true);
    else if (width === 4) view.setUint32(at, this.pick(INTERESTING_32) >>> 0, true);
    else if (width === 8) view.setBigInt64(at, this.pick(INTERESTING_64), true);
    else for (let i = 0; i < width; i++) view.setUint8(at + i, this.int(256));
  }

  /** A seed message with some fields set to hostile values, validly encoded. */
  #hostile(seed: Seed): Uint8Array {
    const fields: Record<string, unknown> = { ...(seed.message as unknown as Record<string, unknown>) };
    const keys = Object.keys(fields).filter((key) => key !== 'type');
    for (let i = 0, n = 1 + this.int(3); i < n && keys.length > 0; i++) {
      const key = this.pick(keys);
      const value = fields[key];
      if (typeof value === 'number') fields[key] = this.#hostileNumber(key);
      else if (typeof value === 'string') fields[key] = this.#hostileString();
      else if (value instanceof Uint8Array) fields[key] = this.#hostileBytes(value);
    }
    try {
      return encodeFrame(this.chance(0.1) ? 0 : 1 + this.int(0xffff), fields as unknown as Message);
    } catch {
      // A value the encoder refuses (out of its field's range): send the seed with a bit flipped instead.
      const bytes = seed.bytes.slice();
      const at = this.int(bytes.length);
      bytes[at] = (bytes[at] ?? 0) ^ (1 << this.int(8));
      return bytes;
    }
  }

  #hostileNumber(key: string): number {
    const unsigned =
      /credits|Bytes|Count|subscriptionId|version|Version|code|generation|delayMs|extendMs|Ms$/.test(key);
    const values = unsigned
      ? [0, 1, 0xffff, 0x7fffffff, 0xffffffff, 2 ** 31]
      : [0, -1, -2, 1, 0x7fffffff, -0x80000000, 2 ** 53 - 1, -(2 ** 53) + 1, 1024, 1025];
    return this.pick(values);
  }

  #hostileString(): string {
    return this.pick([
      '',
      ' ',
      '.',
      '..',
      'a.',
      '*',
      '>',
      'fuzz.>',
      'fuzz.*',
      'x'.repeat(256),
      'x'.repeat(5000),
      '\u0000',
      '\u0000x',
      'é',
      '\ud800',
      '\uffff',
      '../../etc/passwd',
      'fuzz.orders\u0000',
      'FUZZ.ORDERS',
      '[',
      '[{"exact":{}}]',
      '[{"sql":"' + '('.repeat(2000) + '"}]',
      '{"wasm":"' + 'a'.repeat(1100) + '"}',
      '{"wasm":"../x@1"}',
      '[{"any":[' + '{"all":['.repeat(300) + ']}'.repeat(300) + ']}]',
    ]);
  }

  #hostileBytes(current: Uint8Array): Uint8Array {
    const options = [
      () => new Uint8Array(0),
      () => current.subarray(0, this.int(current.length)),
      () => concat(current, current),
      () => {
        const copy = current.slice();
        const at = this.int(copy.length);
        copy[at] = (copy[at] ?? 0) ^ 0xff;
        return copy;
      },
      () => new Uint8Array(1 + this.int(512)).map(() => this.int(256)),
    ];
    return this.pick(options)();
  }

  #randomBytes(): Uint8Array {
    const length = this.chance(0.1) ? this.int(8) : this.chance(0.8) ? this.int(256) : this.int(8192);
    const bytes = new Uint8Array(length);
    for (let i = 0; i < length; i++) bytes[i] = this.int(256);
    // Half the time a plausible root offset, so the verifier gets past the first check.
    if (length >= 8 && this.chance(0.5)) new DataView(bytes.buffer).setUint32(0, 4 + 4 * this.int(4), true);
    return bytes;
  }

  /** A frame whose vectors share one element many times over (a DAG, not a tree), small sizes only. */
  #shared(): Uint8Array {
    const n = 1 + this.int(this.#sharedMax);
    const m = 1 + this.int(this.#sharedMax);
    switch (this.int(3)) {
      case 0:
        return sharedTopicList(n, m);
      case 1:
        return sharedSubscriptionList(n, m);
      default:
        return sharedEventPublish(n, m, 'fuzz.orders');
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function finishFrame(b: flatbuffers.Builder, type: wire.Message, body: number, requestId = 7): Uint8Array {
  wire.Frame.startFrame(b);
  wire.Frame.addRequestId(b, requestId);
  wire.Frame.addMessageType(b, type);
  wire.Frame.addMessage(b, body);
  b.finish(wire.Frame.endFrame(b));
  return b.asUint8Array().slice();
}

/**
 * A TopicList of `topics` offsets that all point at one TopicDescription, whose
 * config vector holds `entries` offsets that all point at one ConfigEntry: a
 * frame of about 4 × (topics + entries) bytes that holds topics × entries
 * objects once followed.
 */
export function sharedTopicList(topics: number, entries: number): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const entry = wire.ConfigEntry.createConfigEntry(
    b,
    b.createString('segment.bytes'),
    b.createString('65536'),
  );
  const config = wire.TopicDescription.createConfigVector(b, new Array<number>(entries).fill(entry));
  const name = b.createString('fuzz.orders');
  wire.TopicDescription.startTopicDescription(b);
  wire.TopicDescription.addName(b, name);
  wire.TopicDescription.addConfig(b, config);
  const description = wire.TopicDescription.endTopicDescription(b);
  const list = wire.TopicList.createTopicList(
    b,
    wire.TopicList.createTopicsVector(b, new Array<number>(topics).fill(description)),
  );
  return finishFrame(b, wire.Message.TopicList, list);
}

/** The same with a SubscriptionList: `subscriptions` × (`members` names + `members` partitions). */
export function sharedSubscriptionList(subscriptions: number, members: number): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const member = b.createString('m-1');
  const memberVector = wire.SubscriptionDescription.createMembersVector(
    b,
    new Array<number>(members).fill(member),
  );
  const partition = wire.SubscriptionPartition.createSubscriptionPartition(
    b,
    b.createString('t'),
    0,
    0n,
    0n,
    member,
  );
  const partitions = wire.SubscriptionDescription.createPartitionsVector(
    b,
    new Array<number>(members).fill(partition),
  );
  const name = b.createString('s');
  const topic = b.createString('t');
  wire.SubscriptionDescription.startSubscriptionDescription(b);
  wire.SubscriptionDescription.addName(b, name);
  wire.SubscriptionDescription.addTopic(b, topic);
  wire.SubscriptionDescription.addMembers(b, memberVector);
  wire.SubscriptionDescription.addPartitions(b, partitions);
  const description = wire.SubscriptionDescription.endSubscriptionDescription(b);
  const list = wire.SubscriptionList.createSubscriptionList(
    b,
    wire.SubscriptionList.createSubscriptionsVector(b, new Array<number>(subscriptions).fill(description)),
  );
  return finishFrame(b, wire.Message.SubscriptionList, list);
}

/**
 * A PublishBatch to `topic` whose event block holds `events` offsets to one
 * Event, whose extensions vector holds `extensions` offsets to one Extension
 * (so the extensions are neither unique nor sorted: the batch is invalid, and
 * the broker has to find that out).
 */
export function sharedEventBlock(events: number, extensions: number): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const extension = wire.Extension.createExtension(
    b,
    b.createString('ext'),
    wire.ExtensionKind.String,
    b.createString('value'),
    0,
    false,
    0,
  );
  const extensionVector = wire.Event.createExtensionsVector(b, new Array<number>(extensions).fill(extension));
  const id = b.createString('1');
  const source = b.createString('/s');
  const type = b.createString('t');
  wire.Event.startEvent(b);
  wire.Event.addId(b, id);
  wire.Event.addSource(b, source);
  wire.Event.addType(b, type);
  wire.Event.addExtensions(b, extensionVector);
  const event = wire.Event.endEvent(b);
  const batch = wire.EventBatch.createEventBatch(
    b,
    wire.EventBatch.createEventsVector(b, new Array<number>(events).fill(event)),
  );
  b.finish(batch);
  return b.asUint8Array().slice();
}

export function sharedEventPublish(events: number, extensions: number, topic: string): Uint8Array {
  return encodeFrame(9, publishBlock(topic, sharedEventBlock(events, extensions), events));
}
