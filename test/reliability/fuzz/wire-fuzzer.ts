/**
 * Sends mutated frames to a broker over real loopback WebSockets (the `ws`
 * client) and checks that each one is answered. Several connections run at
 * once, each with its own seeded mutator (seed + connection number), so a
 * connection's frames are the same on every run with the same seed. A
 * connection is opened again whenever the broker closes it.
 *
 * What counts as an answer depends on what the frame is, which the fuzzer
 * finds out with the same decoder the broker runs (decodeFrame):
 * - a frame that does not decode must get an Error MALFORMED_FRAME, or a close
 *   with a documented code (4001 after repeated malformed frames);
 * - a frame that decodes is followed by a probe (an Unsubscribe of an unknown
 *   subscription, which the broker answers at once): the probe's answer, or a
 *   close with a documented code, proves the connection did not hang on it.
 *   A request the broker always answers is also waited for by its request id
 *   (until the end of the run), as some are answered asynchronously.
 * - on a connection that skipped Hello, the first frame must get Welcome, a
 *   typed Error, or a close.
 * Every frame the broker sends must decode, every Error code must be in the
 * error table, and every close code must be 4000 + one of them.
 */
import WebSocket from 'ws';
import {
  decodeFrame,
  encodeFrame,
  errorCodes,
  errorNameOf,
  type Frame,
  type Message,
} from '../../../src/protocol/index.js';
import type { FrameMutator, Mutant } from './mutate.js';

/** The request id of the probe; a mutant that happens to carry it gets another. */
const PROBE_REQUEST_ID = 0xfffffff1;
const PROBE_SUBSCRIPTION_ID = 0xfffffff3;
const probeFrame = encodeFrame(PROBE_REQUEST_ID, {
  type: 'Unsubscribe',
  subscriptionId: PROBE_SUBSCRIPTION_ID,
});

const knownCodes = new Set<number>(Object.values(errorCodes).map((info) => info.code));
/** Close codes the protocol documents: 4000 + an error code. */
export const isDocumentedClose = (code: number): boolean => code > 4000 && knownCodes.has(code - 4000);

/** Client requests the broker answers whenever they carry a request id (docs/protocol.md). */
const alwaysAnswered = new Set<Message['type']>([
  'Subscribe',
  'Unsubscribe',
  'Fetch',
  'CreateTopic',
  'DeleteTopic',
  'AddPartitions',
  'ListTopics',
  'DescribeTopic',
  'CreateSubscription',
  'DeleteSubscription',
  'ListSubscriptions',
  'DescribeSubscription',
  'SeekSubscription',
  'SetSubscriptionFilter',
  'UpdateSubscription',
]);

export interface WireFuzzOptions {
  readonly url: string;
  readonly frames: number;
  readonly connections: number;
  /** One mutator per connection. */
  readonly mutatorFor: (connection: number) => FrameMutator;
  /** How long any one answer may take. */
  readonly answerTimeoutMs: number;
  /** Share of connections that start without Hello. */
  readonly noHelloShare: number;
  /** False for a mutant that must not be sent (it would allocate more disk than a test may). */
  readonly admit: (message: Message) => boolean;
  /** Called every 10,000 frames. */
  readonly progress?: (sent: number) => void;
}

export interface Failure {
  readonly what: string;
  readonly connection: number;
  readonly frame: number;
  readonly family: string;
  readonly seed: string | null;
  readonly hex: string;
}

export interface WireFuzzResult {
  readonly sent: number;
  /** Mutants that decoded to a request the run does not send (see `admit`). */
  readonly withheld: number;
  readonly locallyMalformed: number;
  readonly probes: number;
  readonly connectionsOpened: number;
  /** Error frames by name, and closes by code (`close 4001`), probe answers excluded. */
  readonly errors: Record<string, number>;
  /** Frames sent by mutation family. */
  readonly families: Record<string, number>;
  /** Hangs, undocumented closes, unknown error codes, undecodable server frames. */
  readonly failures: Failure[];
  /** Milliseconds from a frame's sending to its answer. */
  readonly latenciesMs: Float64Array;
  /** The slowest answers, with what the frame was. */
  readonly slowest: readonly { readonly ms: number; readonly what: string }[];
  readonly durationMs: number;
}

const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes.subarray(0, 512)).toString('hex');

type Waiter = { accept: (frame: Frame) => boolean; resolve: () => void };

/** One WebSocket to the broker and what arrived on it. */
class FuzzConnection {
  readonly socket: WebSocket;
  closeCode: number | null = null;
  readonly closed: Promise<void>;
  /** The mutant last sent, for reporting what an answer (INTERNAL) came after. */
  current: Mutant | null = null;
  /** Set when the fuzzer itself ends the connection: its close code is not the broker's. */
  #closing = false;
  /** Request ids of answered-later requests still waiting, with their frame's description. */
  readonly pending = new Map<number, Omit<Failure, 'what'>>();
  #waiters: Waiter[] = [];
  #onClose: (() => void)[] = [];

  constructor(
    url: string,
    readonly number: number,
    readonly result: { errors: Record<string, number>; failures: Failure[] },
  ) {
    this.socket = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws', { perMessageDeflate: false });
    this.socket.binaryType = 'nodebuffer';
    this.closed = new Promise((resolve) => {
      this.socket.on('close', (code) => {
        this.closeCode = code;
        if (!this.#closing) {
          count(this.result.errors, `close ${code}`);
          if (!isDocumentedClose(code)) this.#fail(`closed with undocumented code ${code}`);
        }
        for (const listener of this.#onClose.splice(0)) listener();
        resolve();
      });
    });
    this.socket.on('error', () => undefined);
    this.socket.on('message', (data: Buffer, isBinary: boolean) => this.#receive(data, isBinary));
  }

  async open(): Promise<boolean> {
    if (this.socket.readyState === WebSocket.OPEN) return true;
    await Promise.race([
      new Promise<void>((resolve) => this.socket.once('open', () => resolve())),
      this.closed,
    ]);
    return this.isOpen;
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN && this.closeCode === null;
  }

  send(bytes: Uint8Array): void {
    if (this.isOpen) this.socket.send(bytes);
  }

  /**
   * Resolves true when a frame `accept` takes arrives, false when the
   * connection closes first; rejects after `timeoutMs`.
   */
  until(accept: (frame: Frame) => boolean, timeoutMs: number): Promise<boolean> {
    if (this.closeCode !== null) return Promise.resolve(false);
    return new Promise((resolve, reject) => {
      let waiter: Waiter | undefined = undefined;
      const onClose = (): void => {
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        this.#onClose = this.#onClose.filter((listener) => listener !== onClose);
        reject(new Error('no answer'));
      }, timeoutMs);
      waiter = {
        accept,
        resolve: () => {
          clearTimeout(timer);
          this.#onClose = this.#onClose.filter((listener) => listener !== onClose);
          resolve(true);
        },
      };
      this.#waiters.push(waiter);
      this.#onClose.push(onClose);
    });
  }

  close(): void {
    this.#closing = true;
    this.socket.terminate();
  }

  #receive(data: Buffer, isBinary: boolean): void {
    let frame: Frame;
    try {
      if (!isBinary) throw new Error('a text message');
      frame = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (error) {
      this.#fail(`the broker sent a frame that does not decode: ${String(error)}`, data);
      return;
    }
    const { message } = frame;
    if (message.type === 'Error') {
      if (!knownCodes.has(message.code))
        this.#fail(`Error with a code outside the error table: ${message.code}`);
      if (frame.requestId !== PROBE_REQUEST_ID) count(this.result.errors, errorNameOf(message.code));
      // INTERNAL is what the broker answers when something other than a BrokerError escaped: a bug.
      if (message.code === errorCodes.INTERNAL.code)
        this.#fail(
          `INTERNAL (an untyped error escaped): ${message.message}`,
          this.current?.bytes ?? new Uint8Array(0),
        );
    }
    this.pending.delete(frame.requestId);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) {
      if (waiter.accept(frame)) waiter.resolve();
      else this.#waiters.push(waiter);
    }
  }

  #fail(what: string, bytes: Uint8Array = new Uint8Array(0)): void {
    this.result.failures.push({
      what,
      connection: this.number,
      frame: -1,
      family: '',
      seed: null,
      hex: hexOf(bytes),
    });
  }
}

function count(counts: Record<string, number>, name: string): void {
  counts[name] = (counts[name] ?? 0) + 1;
}

/** What the fuzzer's own decoder makes of a mutant. */
function classify(bytes: Uint8Array): Frame | null {
  try {
    return decodeFrame(bytes);
  } catch {
    return null;
  }
}

export async function fuzzOverWebSockets(options: WireFuzzOptions): Promise<WireFuzzResult> {
  const started = performance.now();
  const errors: Record<string, number> = {};
  const familyCounts: Record<string, number> = {};
  const failures: Failure[] = [];
  const latencies = new Float64Array(options.frames);
  let sent = 0;
  let withheld = 0;
  let locallyMalformed = 0;
  let probes = 0;
  let connectionsOpened = 0;
  let answeredCount = 0;
  const slowest: { ms: number; what: string }[] = [];
  const live = new Set<FuzzConnection>();
  const quota = (i: number): number =>
    Math.floor(options.frames / options.connections) + (i < options.frames % options.connections ? 1 : 0);

  const worker = async (number: number): Promise<void> => {
    const mutator = options.mutatorFor(number);
    const record = { errors, failures };
    let connection: FuzzConnection | null = null;
    let handshaken = false;
    let refusedInARow = 0;
    const fail = (what: string, frame: number, mutant: Mutant): void => {
      failures.push({
        what,
        connection: number,
        frame,
        family: mutant.family,
        seed: mutant.seed,
        hex: hexOf(mutant.bytes),
      });
    };
    for (let i = 0; i < quota(number);) {
      const mutant = mutator.next();
      const local = classify(mutant.bytes);
      if (local !== null && !options.admit(local.message)) {
        withheld++;
        continue;
      }
      if (connection === null || !connection.isOpen) {
        if (connection !== null) live.delete(connection);
        connection = new FuzzConnection(options.url, number, record);
        live.add(connection);
        connectionsOpened++;
        if (!(await connection.open())) {
          // A broker that is gone refuses every connection: stop instead of spinning.
          if (++refusedInARow >= 20) {
            fail('the broker refused 20 connections in a row', i, mutant);
            return;
          }
          continue;
        }
        refusedInARow = 0;
        handshaken = false;
        if (!mutator.chance(options.noHelloShare)) {
          const welcomed = connection.until((f) => f.requestId === 1, options.answerTimeoutMs);
          connection.send(
            encodeFrame(1, {
              type: 'Hello',
              minVersion: 1,
              maxVersion: 1,
              clientName: 'fuzz',
              authToken: null,
            }),
          );
          try {
            if (!(await welcomed)) continue;
          } catch {
            fail('no answer to Hello', -1, mutant);
            continue;
          }
          handshaken = true;
        }
      }
      const index = i++;
      sent++;
      count(familyCounts, mutant.family);
      if (sent % 10_000 === 0) options.progress?.(sent);
      const sentAt = performance.now();
      connection.current = mutant;
      try {
        if (!handshaken) {
          // Anything at all, or a close: Welcome, HANDSHAKE_REQUIRED, MALFORMED_FRAME, UNSUPPORTED_VERSION.
          const answered = connection.until(() => true, options.answerTimeoutMs);
          connection.send(mutant.bytes);
          await answered;
          handshaken = local?.message.type === 'Hello';
        } else if (local === null) {
          locallyMalformed++;
          const answered = connection.until(
            (f) => f.message.type === 'Error' && f.message.code === errorCodes.MALFORMED_FRAME.code,
            options.answerTimeoutMs,
          );
          connection.send(mutant.bytes);
          await answered;
        } else {
          const requestId = local.requestId;
          if (requestId !== 0 && requestId !== PROBE_REQUEST_ID && alwaysAnswered.has(local.message.type))
            connection.pending.set(requestId, {
              connection: number,
              frame: index,
              family: mutant.family,
              seed: mutant.seed,
              hex: hexOf(mutant.bytes),
            });
          probes++;
          const answered = connection.until((f) => f.requestId === PROBE_REQUEST_ID, options.answerTimeoutMs);
          connection.send(mutant.bytes);
          connection.send(probeFrame);
          await answered;
        }
        const ms = performance.now() - sentAt;
        latencies[answeredCount++ % latencies.length] = ms;
        if (slowest.length < 10 || ms > (slowest[slowest.length - 1]?.ms ?? 0)) {
          slowest.push({
            ms,
            what: `${local === null ? 'malformed' : local.message.type} (${mutant.family} of ${mutant.seed ?? 'random'}, ${mutant.bytes.length} bytes)`,
          });
          slowest.sort((a, b) => b.ms - a.ms).splice(10);
        }
      } catch {
        fail(
          `no answer within ${options.answerTimeoutMs} ms (${local === null ? 'malformed' : local.message.type})`,
          index,
          mutant,
        );
        connection.close();
      }
    }
  };

  await Promise.all(Array.from({ length: options.connections }, (_, i) => worker(i)));

  // Requests answered asynchronously get until the timeout to arrive.
  const deadline = Date.now() + options.answerTimeoutMs;
  const waiting = (): number => [...live].reduce((sum, c) => sum + (c.isOpen ? c.pending.size : 0), 0);
  while (waiting() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  for (const connection of live) {
    if (connection.isOpen)
      for (const [requestId, frame] of connection.pending)
        failures.push({ what: `request ${requestId} never answered`, ...frame });
    connection.close();
  }
  await Promise.all([...live].map((c) => c.closed));
  return {
    sent,
    withheld,
    locallyMalformed,
    probes,
    connectionsOpened,
    errors,
    families: familyCounts,
    failures,
    latenciesMs: latencies.subarray(0, Math.min(answeredCount, latencies.length)),
    slowest,
    durationMs: performance.now() - started,
  };
}

/** The p-th percentile of `values` (0–100). */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}
