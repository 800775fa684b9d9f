/**
 * Pushing stored batches to a connection's subscriptions as credits and socket
 * backpressure allow: one pass per connection per event-loop turn, bounded,
 * reading each cursor's partition (at once inline, or when its worker answers),
 * filtering (in place, or in the WASM sandbox) and sending `Deliver` frames.
 */
import { toBrokerError } from '../broker/index.js';
import type { ReadResult } from '../log/index.js';
import { BrokerError, forEachStoredBatch, keptCount, type Message } from '../protocol/index.js';
import type { ResolvedConfig } from './config.js';
import { filterFailure, type Connection, type Cursor, type Subscription } from './connection-state.js';
import type { BrokerMetrics } from './metrics.js';
import type { WebSocket } from './uws.js';
import { wasmFilterNow } from './filter-swap.js';
import type { Kept, WasmFilters } from './wasm-filters.js';

/** Deliver frames sent to one connection before the pump yields to the event loop. */
const DELIVERIES_PER_TURN = 256;
/** What one read did for a subscription (see `#deliver`). */
type Delivery = 'sent' | 'skipped' | 'nothing';

/** How the pump answers on a socket: the gateway's send, error and close. */
export interface SocketOutput {
  send(ws: WebSocket<Connection>, requestId: number, message: Message): void;
  sendError(ws: WebSocket<Connection>, requestId: number, error: unknown): void;
  close(ws: WebSocket<Connection>, error: BrokerError): void;
}

export class DeliveryPump {
  readonly #config: ResolvedConfig;
  readonly #metrics: BrokerMetrics;
  readonly #wasmFilters: WasmFilters;
  readonly #output: SocketOutput;
  /** Connections with subscriptions that may have something to send. */
  readonly #pending = new Set<WebSocket<Connection>>();
  #scheduled = false;

  constructor(
    config: ResolvedConfig,
    metrics: BrokerMetrics,
    wasmFilters: WasmFilters,
    output: SocketOutput,
  ) {
    this.#config = config;
    this.#metrics = metrics;
    this.#wasmFilters = wasmFilters;
    this.#output = output;
  }

  /** The connection may have something to send: pump it on the next turn. */
  schedule(ws: WebSocket<Connection>): void {
    this.#pending.add(ws);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const pending = [...this.#pending];
      this.#pending.clear();
      for (const socket of pending) this.#pump(socket);
    });
  }

  /** The connection closed: nothing more to pump for it. */
  forget(ws: WebSocket<Connection>): void {
    this.#pending.delete(ws);
  }

  /**
   * Sends stored batches to the connection's subscriptions while credits and
   * socket buffer allow. A partition on this thread is read at once; one in a
   * worker answers later, and its cursor waits for that answer (which schedules
   * the next pump) before asking again.
   */
  #pump(ws: WebSocket<Connection>): void {
    const connection = ws.getUserData();
    if (connection.closed) return;
    // A bounded turn per connection, so one consumer with a backlog cannot hold the event loop.
    let budget = DELIVERIES_PER_TURN;
    for (const subscription of connection.subscriptions.values()) {
      for (const cursor of subscription.cursors) {
        while (!cursor.reading && subscription.credits > 0 && cursor.nextOffset < cursor.log.endOffset) {
          if (budget-- === 0) {
            this.schedule(ws);
            return;
          }
          const buffered = ws.getBufferedAmount();
          if (buffered > this.#config.slowConsumerBytes) {
            this.#metrics.slowConsumers.inc();
            this.#output.close(
              ws,
              new BrokerError('SLOW_CONSUMER', `${buffered} bytes are waiting to be sent to this consumer`),
            );
            return;
          }
          if (buffered > this.#config.maxBufferedBytes) {
            connection.stalledSinceMs ??= performance.now();
            return; // drain() resumes
          }
          cursor.reading = true;
          let waiting = false;
          let outcome: Delivery = 'nothing';
          cursor.log.read(
            Math.max(cursor.nextOffset, cursor.log.startOffset),
            1,
            (read) => {
              if (subscription.wasm !== null && read.batchCount > 0) {
                this.#filterInSandbox(ws, subscription, cursor, read);
                outcome = 'sent'; // on its way: the cursor stays `reading` until the sandbox answers
                return;
              }
              cursor.reading = false;
              outcome = this.#deliver(ws, subscription, cursor, read);
              if (waiting && outcome !== 'nothing') this.schedule(ws);
            },
            (error) => {
              cursor.reading = false;
              // A rebalance or a topic deletion took the partition away meanwhile: nothing is wrong.
              if (!subscription.cursors.includes(cursor)) return;
              subscription.credits = 0;
              this.#output.sendError(ws, 0, toBrokerError(error));
            },
          );
          waiting = cursor.reading;
          // Waiting: the worker's answer schedules the next pump. Nothing read (a gap at the tail
          // after compaction): the next append wakes the cursor, rather than spinning on it.
          if (waiting || outcome === 'nothing') break;
        }
      }
    }
  }

  /**
   * Runs a read through the subscription's WASM filter in the sandbox thread,
   * then delivers it. The bytes are copied first: a worker's answer is valid
   * only during its visit. Events the filter failed on under `dead-letter` are
   * stored in `<topic>.dlq` before the rest of the batch goes out. A filter
   * that fails ends the deliveries with FILTER_FAILED naming the filter's
   * error (and a dead letter that cannot be stored, with its own error).
   */
  #filterInSandbox(
    ws: WebSocket<Connection>,
    subscription: Subscription,
    cursor: Cursor,
    read: ReadResult,
  ): void {
    const copy: ReadResult = { ...read, bytes: read.bytes.slice() };
    const origin = {
      subscription:
        subscription.membership?.group.definition.name ??
        `connection ${ws.getUserData().id} subscription ${subscription.id}`,
      topic: cursor.topic,
      partition: cursor.partition,
      fromOffset: cursor.nextOffset,
    };
    // The filter in force when this batch starts: a swap (filter-swap.ts) takes effect between batches.
    const now = wasmFilterNow(subscription, this.#wasmFilters);
    const verdict =
      typeof now === 'string'
        ? this.#wasmFilters.keep(now, copy.bytes, origin)
        : now.then((id) => this.#wasmFilters.keep(id, copy.bytes, origin));
    verdict.then(
      (kept) => {
        cursor.reading = false;
        this.#deliver(ws, subscription, cursor, copy, kept);
        this.schedule(ws);
      },
      (error: unknown) => {
        cursor.reading = false;
        if (!subscription.cursors.includes(cursor)) return;
        subscription.stoppedByFilter ??= subscription.credits;
        subscription.credits = 0;
        this.#output.sendError(ws, 0, filterFailure(error));
      },
    );
  }

  /**
   * Sends one read to the subscription, unless it or its connection ended while
   * the read was on its way: 'sent', 'skipped' (its filter matched none of the
   * batch's events: the cursor moves on, no credit is used), or 'nothing'.
   * `kept` is a WASM filter's verdict, already taken.
   */
  #deliver(
    ws: WebSocket<Connection>,
    subscription: Subscription,
    cursor: Cursor,
    read: ReadResult,
    kept: Kept = null,
  ): Delivery {
    const connection = ws.getUserData();
    if (
      connection.closed ||
      connection.subscriptions.get(subscription.id) !== subscription ||
      !subscription.cursors.includes(cursor)
    )
      return 'nothing';
    if (read.batchCount === 0) {
      cursor.nextOffset = Math.max(cursor.nextOffset, read.nextOffset);
      return 'nothing';
    }
    // One batch per read (maxBytes 1); its age and then the filter decide about its events.
    let expired = false;
    forEachStoredBatch(read.bytes, (batch) => {
      if (cursor.ttlMs !== null && Date.now() - batch.firstTimestampMs > cursor.ttlMs) {
        expired = true;
        this.#metrics.expiredEvents.inc({ topic: cursor.topic }, batch.recordCount);
        return;
      }
      this.#metrics.consumeLagSeconds.observe(Math.max(0, Date.now() - batch.firstTimestampMs) / 1000);
      if (subscription.filter !== null) kept = subscription.filter.keep(batch);
    });
    const events = kept instanceof Uint8Array ? keptCount(kept) : read.nextOffset - read.firstOffset;
    cursor.nextOffset = read.nextOffset;
    if (kept === 'none' || expired) return 'skipped';
    subscription.credits--;
    this.#metrics.deliveredEvents.inc({ topic: cursor.topic }, events);
    this.#output.send(ws, 0, {
      type: 'Deliver',
      subscriptionId: subscription.id,
      topic: cursor.topic,
      partition: cursor.partition,
      batch: read.bytes,
      ...(kept === null ? {} : { kept }),
    });
    return 'sent';
  }
}
