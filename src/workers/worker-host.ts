/**
 * `--workers N`: partitions' logs live in N worker threads, each fed by one
 * SharedArrayBuffer ring and answering on another (`partition-worker.ts`).
 * Partitions are spread over the workers as they are opened. The gateway sees
 * each as a `Partition` whose offsets are mirrored from the answers, so deciding
 * whether a subscription has something to read costs no round trip.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import {
  localPartitions,
  type Partition,
  type PartitionAppend,
  type PartitionHost,
  type ReadVisitor,
} from '../broker/index.js';
import {
  StorageError,
  type AppendResult,
  type PartitionLogOptions,
  type ReadResult,
  type StorageErrorCode,
} from '../log/index.js';
import {
  ANSWER_HEADER_BYTES,
  APPEND_FIELDS_BYTES,
  AnswerKind,
  Op,
  READ_ANSWER_FIELDS_BYTES,
  READ_FIELDS_BYTES,
  REQUEST_HEADER_BYTES,
  dataView,
  readAnswerHeader,
  writeRequestHeader,
  type AnswerHeader,
  type ErrorAnswer,
} from './partition-messages.js';
import type { PartitionWorkerData } from './partition-worker.js';
import { BrokerError } from '../protocol/index.js';
import { CHANNEL_RING_BYTES, ChannelReceiver, ChannelSender, type ChannelEnds } from './channel.js';
import { createRing } from './ring.js';

export interface WorkerHostOptions {
  readonly workers: number;
}

/** Under vitest the host runs from `src/*.ts`, which a worker thread cannot load: it then runs the build. */
function workerEntry(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts')
    ? new URL('../../dist/src/workers/partition-worker.js', here)
    : new URL('./partition-worker.js', here);
}

/** One direction's ring and port: the first end stays with the gateway, the second goes to the worker. */
function channel(): [ChannelEnds, ChannelEnds] {
  const ring = createRing(CHANNEL_RING_BYTES);
  const { port1, port2 } = new MessageChannel();
  return [
    { ring, overflow: port1 },
    { ring, overflow: port2 },
  ];
}

/** What waits for an answer: called with the answer's body, or with the error. */
interface Pending {
  answered(kind: AnswerKind, body: Uint8Array): void;
  failed(error: Error): void;
}

function errorFrom(body: Uint8Array): Error {
  const { kind, code, message } = JSON.parse(new TextDecoder().decode(body)) as ErrorAnswer;
  switch (kind) {
    case 'storage':
      return new StorageError(code as StorageErrorCode, message);
    case 'broker':
      return BrokerError.fromWire(code as number, message);
    case 'other':
      return new Error(message);
  }
}

function expectKind(kind: AnswerKind, expected: AnswerKind): void {
  if (kind !== expected) throw new Error(`partition worker answered ${kind}, expected ${expected}`);
}

/** Settles a promise from an answer, with `decode` reading the body of the expected kind. */
function promised<T>(
  expected: AnswerKind,
  decode: (body: Uint8Array) => T,
): { pending: Pending; promise: Promise<T> } {
  let pending!: Pending;
  const promise = new Promise<T>((resolve, reject) => {
    pending = {
      answered: (kind, body) => {
        expectKind(kind, expected);
        resolve(decode(body));
      },
      failed: reject,
    };
  });
  return { pending, promise };
}

function readResultFrom(body: Uint8Array, copy: boolean): ReadResult {
  const fields = dataView(body);
  const bytes = body.subarray(READ_ANSWER_FIELDS_BYTES);
  return {
    firstOffset: fields.getFloat64(0, true),
    nextOffset: fields.getFloat64(8, true),
    batchCount: fields.getUint32(16, true),
    bytes: copy ? bytes.slice() : bytes,
  };
}

/** One worker thread and its two channels, with the requests it has not answered yet. */
class PartitionWorker {
  readonly #thread: Worker;
  readonly #requests: ChannelSender;
  readonly #answers: ChannelReceiver;
  readonly #pending = new Map<number, Pending>();
  readonly #partitions = new Map<number, RemotePartition>();
  #nextRequestId = 1;
  /** Set once the thread is gone; every request fails with it from then on. */
  #lost: Error | null = null;
  readonly #exited: Promise<void>;
  readonly #served: Promise<void>;

  constructor(index: number) {
    const [requests, workerRequests] = channel();
    const [answers, workerAnswers] = channel();
    this.#requests = new ChannelSender(requests);
    this.#answers = new ChannelReceiver(answers);
    const workerData: PartitionWorkerData = { requests: workerRequests, answers: workerAnswers };
    this.#thread = new Worker(workerEntry(), {
      workerData,
      transferList: [workerRequests.overflow, workerAnswers.overflow],
      name: `eddy-partitions-${index}`,
      // A worker inherits the process's flags but refuses `--input-type` (as in `node --input-type=module -e`);
      // then it gets none (a list given explicitly may hold only per-thread flags).
      ...(process.execArgv.some((flag) => flag.startsWith('--input-type')) ? { execArgv: [] } : {}),
    });
    this.#exited = new Promise((resolve) => {
      this.#thread.on('error', (error) =>
        this.#lose(new BrokerError('STORAGE_FAILED', `partition worker ${index} failed: ${error.message}`)),
      );
      this.#thread.on('exit', (code) => {
        this.#lose(new BrokerError('STORAGE_FAILED', `partition worker ${index} exited with code ${code}`));
        resolve();
      });
    });
    this.#served = this.#serve();
  }

  get partitionCount(): number {
    return this.#partitions.size;
  }

  get threadId(): number {
    return this.#thread.threadId;
  }

  /** Ends the thread abruptly, as a crash would. */
  async terminate(): Promise<void> {
    await this.#thread.terminate();
    await this.#exited;
  }

  register(partition: RemotePartition): void {
    this.#partitions.set(partition.id, partition);
  }

  forget(partition: RemotePartition): void {
    this.#partitions.delete(partition.id);
  }

  /** Sends one request: its header, then `bodyLength` bytes written by `fill` (see `ChannelSender.send`). */
  request(
    op: Op,
    partitionId: number,
    flags: { durable: boolean; compression: 'none' | 'lz4' },
    bodyLength: number,
    fill: ((body: Uint8Array) => void) | null,
    pending: Pending,
  ): void {
    if (this.#lost !== null) {
      pending.failed(this.#lost);
      return;
    }
    const requestId = this.#nextRequestId;
    this.#nextRequestId = (requestId + 1) >>> 0 || 1;
    this.#pending.set(requestId, pending);
    this.#requests.send(REQUEST_HEADER_BYTES + bodyLength, (view) => {
      writeRequestHeader(view, { op, requestId, partitionId, ...flags });
      fill?.(view.subarray(REQUEST_HEADER_BYTES));
    });
  }

  async #serve(): Promise<void> {
    const visit = (message: Uint8Array): void => this.#onAnswer(message);
    while (await this.#answers.whenReadable()) this.#answers.drain(visit);
  }

  #onAnswer(message: Uint8Array): void {
    const header: AnswerHeader = readAnswerHeader(dataView(message));
    this.#partitions.get(header.partitionId)?.mirror(header);
    const pending = this.#pending.get(header.requestId);
    if (pending === undefined) return;
    this.#pending.delete(header.requestId);
    const body = message.subarray(ANSWER_HEADER_BYTES);
    // A callback that throws must not end this loop: every partition of the worker would hang.
    try {
      if (header.kind === AnswerKind.Failed) pending.failed(errorFrom(body));
      else pending.answered(header.kind, body);
    } catch (error) {
      pending.failed(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #lose(error: Error): void {
    if (this.#lost !== null) return;
    this.#lost = error;
    this.#requests.close();
    this.#answers.close();
    for (const pending of this.#pending.values()) pending.failed(error);
    this.#pending.clear();
    for (const partition of this.#partitions.values()) partition.lost(error);
  }

  /** Closes the inbound ring (the worker closes what is still open) and waits for the thread to end. */
  async stop(): Promise<void> {
    this.#requests.close();
    await this.#exited;
    await this.#served;
  }
}

class RemotePartition implements Partition {
  readonly id: number;
  readonly #worker: PartitionWorker;
  #startOffset = 0;
  #endOffset = 0;
  #failure: string | null = null;

  constructor(id: number, worker: PartitionWorker) {
    this.id = id;
    this.#worker = worker;
  }

  get startOffset(): number {
    return this.#startOffset;
  }

  get endOffset(): number {
    return this.#endOffset;
  }

  get failure(): string | null {
    return this.#failure;
  }

  mirror(header: AnswerHeader): void {
    this.#startOffset = header.startOffset;
    this.#endOffset = header.endOffset;
    if (!header.failed) this.#failure = null;
    else this.#failure ??= 'the partition log refuses writes after a storage failure';
  }

  lost(error: Error): void {
    this.#failure = error.message;
  }

  open(dir: string, options: PartitionLogOptions): Promise<void> {
    const json = new TextEncoder().encode(JSON.stringify({ dir, options }));
    const { pending, promise } = promised(AnswerKind.Done, () => undefined);
    this.#worker.request(Op.Open, this.id, noFlags, json.length, (body) => body.set(json), pending);
    return promise;
  }

  append(events: Uint8Array, options: PartitionAppend): Promise<AppendResult> {
    const key = options.key ?? empty;
    const { pending, promise } = promised(AnswerKind.Appended, (body) => {
      const fields = dataView(body);
      return { baseOffset: fields.getFloat64(0, true), lastOffset: fields.getFloat64(8, true) };
    });
    const fill = (body: Uint8Array): void => {
      const fields = dataView(body);
      fields.setUint32(0, options.recordCount, true);
      fields.setUint32(4, key.length, true);
      fields.setFloat64(8, options.producerId, true);
      fields.setInt32(16, options.sequence, true);
      fields.setUint32(20, 0, true);
      body.set(key, APPEND_FIELDS_BYTES);
      body.set(events, APPEND_FIELDS_BYTES + key.length);
    };
    const flags = { durable: options.durable, compression: options.compression };
    const bodyLength = APPEND_FIELDS_BYTES + key.length + events.length;
    this.#worker.request(Op.Append, this.id, flags, bodyLength, fill, pending);
    return promise;
  }

  read(offset: number, maxBytes: number, visit: ReadVisitor, fail: (error: unknown) => void): void {
    const pending: Pending = {
      answered: (kind, body) => {
        expectKind(kind, AnswerKind.Read);
        visit(readResultFrom(body, false));
      },
      failed: fail,
    };
    this.#requestRead(offset, maxBytes, pending);
  }

  fetch(offset: number, maxBytes: number): Promise<ReadResult> {
    const { pending, promise } = promised(AnswerKind.Read, (body) => readResultFrom(body, true));
    this.#requestRead(offset, maxBytes, pending);
    return promise;
  }

  #requestRead(offset: number, maxBytes: number, pending: Pending): void {
    const fill = (body: Uint8Array): void => {
      const fields = dataView(body);
      fields.setFloat64(0, offset, true);
      fields.setUint32(8, Math.min(maxBytes, 0xffff_ffff), true);
      fields.setUint32(12, 0, true);
    };
    this.#worker.request(Op.Read, this.id, noFlags, READ_FIELDS_BYTES, fill, pending);
  }

  offsetForTime(timestampMs: number): Promise<number | null> {
    const { pending, promise } = promised(AnswerKind.Offset, (body) => {
      const offset = dataView(body).getFloat64(0, true);
      return offset < 0 ? null : offset;
    });
    this.#worker.request(
      Op.OffsetForTime,
      this.id,
      noFlags,
      8,
      (body) => dataView(body).setFloat64(0, timestampMs, true),
      pending,
    );
    return promise;
  }

  async close(): Promise<void> {
    const { pending, promise } = promised(AnswerKind.Done, () => undefined);
    this.#worker.request(Op.Close, this.id, noFlags, 0, null, pending);
    try {
      await promise;
    } finally {
      this.#worker.forget(this);
    }
  }
}

const noFlags = { durable: false, compression: 'none' } as const;
const empty = new Uint8Array(0);

export class WorkerHost implements PartitionHost {
  readonly #workers: PartitionWorker[];
  #nextPartitionId = 1;

  constructor(options: WorkerHostOptions) {
    if (!Number.isSafeInteger(options.workers) || options.workers < 1)
      throw new RangeError(`workers must be a positive integer, got ${options.workers}`);
    this.#workers = Array.from({ length: options.workers }, (_, i) => new PartitionWorker(i));
  }

  async open(dir: string, options: PartitionLogOptions): Promise<Partition> {
    if (options.nowMs !== undefined)
      throw new TypeError('a clock function cannot cross into a partition worker; use --workers 0');
    // The worker with the fewest partitions takes the next one.
    let worker = this.#workers[0] as PartitionWorker;
    for (const candidate of this.#workers)
      if (candidate.partitionCount < worker.partitionCount) worker = candidate;
    const partition = new RemotePartition(this.#nextPartitionId++, worker);
    worker.register(partition);
    try {
      await partition.open(dir, options);
    } catch (error) {
      worker.forget(partition);
      throw error;
    }
    return partition;
  }

  /** Partitions open on each worker, in worker order. */
  get partitionsPerWorker(): number[] {
    return this.#workers.map((worker) => worker.partitionCount);
  }

  get threadIds(): number[] {
    return this.#workers.map((worker) => worker.threadId);
  }

  /**
   * Ends one worker thread abruptly, as a crash would: its partitions fail with
   * the reason and refuse every request. For fault-injection tests and drills.
   */
  terminateWorker(index: number): Promise<void> {
    const worker = this.#workers[index];
    if (worker === undefined) throw new RangeError(`there is no worker ${index}`);
    return worker.terminate();
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((worker) => worker.stop()));
  }
}

/**
 * Where a broker's partitions live: on the calling thread for 0 workers (the
 * same `LocalPartition` code, no rings), else in that many worker threads.
 */
export function partitionHost(workers: number): PartitionHost {
  return workers === 0 ? localPartitions : new WorkerHost({ workers });
}
