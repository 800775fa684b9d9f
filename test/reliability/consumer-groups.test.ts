/**
 * Consumer groups under crashes (issue 7; RELIABILITY.md D4): members of a
 * queue subscription are cut off mid-batch — their socket destroyed with
 * events in hand and no acks sent, as a SIGKILLed process's kernel would leave
 * it — while others nack poison events, sit on events past the ack timeout,
 * or ack late. A real broker, real SDK clients; the checker watches each
 * member's socket and trusts none of the broker's answers but the ones it
 * has to (attempt numbers, dead letters):
 *
 *   DOUBLE-LEASE  an event delivered while an earlier delivery's lease on it
 *                 cannot have ended yet (see `Lease`)
 *   ACKED-AGAIN   an event delivered again after an ack that certainly counted
 *   DLQ           a dead letter after other than `max.deliveries` deliveries,
 *                 one stored twice, a delivery numbered past the limit, or a
 *                 poison event that never reached the dead-letter topic
 *   UNSEEN        a published event that no member sent an ack for and that is
 *                 not in the dead-letter topic, once the ack floor reached the end
 *                 (the member's socket sent the Ack frame: one sent just before
 *                 the member was cut off may have counted though its answer
 *                 never came)
 *
 * Leases are bounded on the test's monotonic clock (performance.now), from
 * what the member's socket sent and received:
 *   - a delivery cannot be leased before the broker had the credit it used:
 *     the k-th Deliver frame of a subscription used its k-th credit, so its
 *     lease starts after that credit was sent (`creditedMs`);
 *   - it cannot be leased after it arrived (`receivedMs`);
 *   - the broker ends the lease at its deadline, at least creditedMs +
 *     ack.timeout.ms, or earlier on the holder's ack, nack or disconnect, none
 *     of which it can see before the member sends it.
 * So a later attempt that arrived before the earlier one's `leaseEndMs`
 * overlapped it, and an ack answered before creditedMs + ack.timeout.ms was
 * taken by the broker while the lease held. Both checks are exact bounds, not
 * timing guesses: a slow machine makes them weaker, never wrong.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  isBrokerError,
  type DeliveredEvent,
  type EddyClient,
  type GroupSubscription,
  type WebSocketLike,
} from '../../src/client/index.js';
import { decodeFrame, forEachStoredBatch, isKept } from '../../src/protocol/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { eventually, useBrokers } from '../helpers/broker.js';
import { seededRandom } from '../helpers/random.js';
import { countError, recordFault } from './report.js';

const brokers = useBrokers('consumer-groups');

const TOPIC = 'jobs';
const DEAD_LETTER_TOPIC = `${TOPIC}.dlq`;
const SUBSCRIPTION = 'workers';
const PARTITIONS = 2;
const MEMBERS = 4;
const ACK_TIMEOUT_MS = 1000;
const MAX_DELIVERIES = 4;
/** Every POISON_EVERY-th event fails every time: it must reach the dead-letter topic. */
const POISON_EVERY = 25;
/** Share of the other events a member sits on past the ack timeout, then acks (late). */
const SLOW_SHARE = 0.03;
const EVENTS = Number(process.env['EDDY_GROUP_EVENTS'] ?? 1400);
/** Events published per 50 ms: about 18 s of publishing for 1,400. */
const EVENTS_PER_TICK = 4;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const now = (): number => performance.now();

/** One delivery of an event to a member, as the member's socket saw it. */
interface Lease {
  readonly member: string;
  readonly partition: number;
  readonly offset: number;
  readonly attempt: number;
  /** When the credit this delivery used was sent: the broker leased it no earlier. */
  readonly creditedMs: number;
  /** When its Deliver frame arrived: the broker leased it no later. */
  readonly receivedMs: number;
  /** When the member sent its ack or nack, or was cut off; null while it holds the event. */
  endedMs: number | null;
  ending: 'ack' | 'nack' | 'crash' | null;
  /** When the broker answered the member's ack. */
  ackAnsweredMs: number | null;
  /** A poison event the member let time out, or a slow one it acked after the timeout. */
  timedOut: boolean;
}

/**
 * The earliest the broker's deadline for `lease` can be. Its clock is
 * performance.now() in whole milliseconds (queue-group.ts), so the deadline
 * may come up to 1 ms before the credit's send time plus the timeout.
 */
const deadlineMs = (lease: Lease): number => lease.creditedMs + ACK_TIMEOUT_MS - 1;

/** The earliest the broker can have ended `lease`: its deadline, or the holder's ack, nack or disconnect. */
const leaseEndMs = (lease: Lease): number =>
  Math.min(deadlineMs(lease), lease.endedMs ?? Number.POSITIVE_INFINITY);

/** The broker answered the ack before the lease's deadline could pass: the ack counted. */
const certainlyAcked = (lease: Lease): boolean =>
  lease.ackAnsweredMs !== null && lease.ackAnsweredMs < deadlineMs(lease);

const eventKey = (partition: number, offset: number): string => `${partition}/${offset}`;

/**
 * A member's socket, watched: the credits it sends and the deliveries it gets,
 * each with the time on the test's monotonic clock.
 */
class SocketTap {
  socket: WebSocket | null = null;
  /** Per subscription id: when each unit of credit was sent, in order. */
  readonly #credits = new Map<number, number[]>();
  /** Per subscription id: Deliver frames received. */
  readonly #delivers = new Map<number, number>();
  readonly #member: string;
  readonly #history: GroupHistory;
  readonly #errors: Record<string, number>;
  cut = false;

  constructor(member: string, history: GroupHistory, errors: Record<string, number>) {
    this.#member = member;
    this.#history = history;
    this.#errors = errors;
  }

  readonly factory = (url: string): WebSocketLike => {
    const socket = new WebSocket(url);
    this.socket = socket;
    const send = socket.send.bind(socket);
    socket.send = ((data: Uint8Array) => {
      this.#sent(data);
      send(data);
    }) as typeof socket.send;
    // Registered before the client's own handler, so this sees each frame first.
    socket.on('message', (data: Buffer) => this.#received(new Uint8Array(data)));
    return socket as unknown as WebSocketLike;
  };

  /** Destroys the socket at once: no close frame, no unsent acks; the broker sees the TCP connection end. */
  cutOff(): void {
    this.cut = true;
    this.socket?.terminate();
  }

  #sent(bytes: Uint8Array): void {
    const { message } = decodeFrame(bytes);
    if (message.type === 'Ack')
      for (const offset of [message.offset, ...(message.offsets ?? [])])
        this.#history.ackSent.add(eventKey(message.partition, offset));
    if (message.type !== 'Credit' && message.type !== 'Subscribe') return;
    const { subscriptionId: id, credits: units } = message;
    const sentMs = now();
    let credits = this.#credits.get(id);
    if (credits === undefined) this.#credits.set(id, (credits = []));
    for (let unit = 0; unit < units; unit++) credits.push(sentMs);
  }

  #received(bytes: Uint8Array): void {
    if (this.cut) return;
    const receivedMs = now();
    const { message } = decodeFrame(bytes);
    if (message.type !== 'Deliver') return;
    const id = message.subscriptionId;
    const count = (this.#delivers.get(id) ?? 0) + 1;
    this.#delivers.set(id, count);
    const creditedMs = this.#credits.get(id)?.[count - 1];
    if (creditedMs === undefined) {
      countError(this.#errors, 'Deliver beyond the credit granted');
      return;
    }
    forEachStoredBatch(message.batch, (batch) => {
      for (let i = 0; i < batch.recordCount; i++) {
        if (message.kept !== undefined && !isKept(message.kept, i)) continue;
        const attempt = message.attempts?.[i];
        if (attempt === undefined || attempt === 0) {
          countError(this.#errors, 'queue delivery without an attempt number');
          continue;
        }
        this.#history.lease({
          member: this.#member,
          partition: message.partition,
          offset: batch.baseOffset + i,
          attempt,
          creditedMs,
          receivedMs,
          endedMs: null,
          ending: null,
          ackAnsweredMs: null,
          timedOut: false,
        });
      }
    });
  }
}

/** Everything the run saw, and the checks over it. */
class GroupHistory {
  /** Event id by `partition/offset`, from the publish answers. */
  readonly idAt = new Map<string, string>();
  readonly poison = new Set<string>();
  /** Leases by `partition/offset`, in arrival order. */
  readonly leases = new Map<string, Lease[]>();
  /** Events some member's socket sent an Ack frame for, by `partition/offset`. */
  readonly ackSent = new Set<string>();
  /** Leases by `member/partition/offset/attempt`, for the handler to find its own. */
  readonly #byDelivery = new Map<string, Lease>();

  lease(lease: Lease): void {
    const key = eventKey(lease.partition, lease.offset);
    let leases = this.leases.get(key);
    if (leases === undefined) this.leases.set(key, (leases = []));
    leases.push(lease);
    this.#byDelivery.set(`${lease.member}/${key}/${lease.attempt}`, lease);
  }

  find(member: string, d: DeliveredEvent): Lease | undefined {
    return this.#byDelivery.get(`${member}/${eventKey(d.partition, d.offset)}/${d.attempt ?? 0}`);
  }

  /** DOUBLE-LEASE, ACKED-AGAIN and numbering faults over every event's deliveries. */
  checkLeases(): { doubleLeased: string[]; ackedAgain: string[]; numbering: string[] } {
    const doubleLeased: string[] = [];
    const ackedAgain: string[] = [];
    const numbering: string[] = [];
    for (const [key, leases] of this.leases) {
      const byAttempt = [...leases].sort((a, b) => a.attempt - b.attempt);
      for (let i = 0; i < byAttempt.length; i++) {
        const earlier = byAttempt[i] as Lease;
        if (earlier.attempt > MAX_DELIVERIES)
          numbering.push(`${key}: attempt ${earlier.attempt} > max.deliveries ${MAX_DELIVERIES}`);
        for (const later of byAttempt.slice(i + 1)) {
          if (later.attempt === earlier.attempt) {
            numbering.push(
              `${key}: attempt ${later.attempt} delivered to ${earlier.member} and ${later.member}`,
            );
            continue;
          }
          if (later.receivedMs < leaseEndMs(earlier))
            doubleLeased.push(
              `${key}: attempt ${later.attempt} reached ${later.member} ${Math.round(leaseEndMs(earlier) - later.receivedMs)} ms ` +
                `before ${earlier.member}'s lease of attempt ${earlier.attempt} could end`,
            );
          if (certainlyAcked(earlier))
            ackedAgain.push(
              `${key}: attempt ${later.attempt} after ${earlier.member} acked attempt ${earlier.attempt}`,
            );
        }
      }
    }
    return { doubleLeased, ackedAgain, numbering };
  }
}

interface Member {
  readonly name: string;
  readonly tap: SocketTap;
  /** Set once joined (the SDK calls the handler only after that). */
  subscription: GroupSubscription | null;
  /** Cut off: it handles nothing more. */
  dead: boolean;
}

interface Run {
  readonly broker: RunningBroker;
  readonly history: GroupHistory;
  readonly random: () => number;
  readonly errors: Record<string, number>;
  readonly members: Member[];
  /** Events each cut-off member held unacked when its socket went. */
  readonly heldAtCrash: number[];
  /** From a cut-off to the redelivery of each event the member held. */
  readonly recoveryMs: number[];
  readonly crashes: { readonly atMs: number; readonly held: readonly Lease[] }[];
  nextMember: number;
}

async function startMember(run: Run): Promise<Member> {
  const name = `member-${run.nextMember++}`;
  const tap = new SocketTap(name, run.history, run.errors);
  const client = await brokers.client(run.broker, { reconnectMaxDelayMs: 0, webSocket: tap.factory });
  client.onError = (error) => {
    if (!tap.cut) countError(run.errors, `client: ${isBrokerError(error) ? error.errorName : 'Error'}`);
  };
  const member: Member = { name, tap, subscription: null, dead: false };
  member.subscription = await client.join(SUBSCRIPTION, { ack: 'manual', credits: 4, member: name }, (d) => {
    if (member.dead) return;
    const lease = run.history.find(name, d);
    if (lease === undefined) {
      countError(run.errors, 'delivery the socket did not see');
      return;
    }
    void handle(run, member, d, lease);
  });
  run.members.push(member);
  return member;
}

/** What a member does with one event: ack it soon, sit on it past the deadline, or fail it. */
async function handle(run: Run, member: Member, d: DeliveredEvent, lease: Lease): Promise<void> {
  const { random, history } = run;
  const subscription = member.subscription;
  if (subscription === null) return; // never: the SDK waits for the join to resolve
  if (history.poison.has(d.event.id)) {
    if (random() < 0.5) {
      lease.timedOut = true; // never answered: its ack timeout fires
      return;
    }
    await sleep(random() * 20);
    if (member.dead) return;
    lease.endedMs = now();
    lease.ending = 'nack';
    try {
      subscription.nack(d, { error: 'poison' });
    } catch (error) {
      countError(run.errors, `nack: ${isBrokerError(error) ? error.errorName : 'Error'}`);
    }
    return;
  }
  const slow = random() < SLOW_SHARE;
  lease.timedOut = slow;
  await sleep(slow ? ACK_TIMEOUT_MS + 200 + random() * 400 : random() * 80);
  if (member.dead) return;
  lease.endedMs = now();
  lease.ending = 'ack';
  try {
    await subscription.ack(d);
    lease.ackAnsweredMs = now();
  } catch (error) {
    if (!member.dead) countError(run.errors, `ack: ${isBrokerError(error) ? error.errorName : 'Error'}`);
  }
}

/** Cuts a member off with whatever it holds, and starts another in its place. */
async function crash(run: Run, member: Member): Promise<void> {
  member.dead = true;
  const atMs = now();
  /** Events it may still hold (their deadline cannot have passed): the broker must hand them out again. */
  const held: Lease[] = [];
  for (const leases of run.history.leases.values())
    for (const lease of leases)
      if (lease.member === member.name && lease.endedMs === null) {
        lease.endedMs = atMs;
        lease.ending = 'crash';
        if (deadlineMs(lease) > atMs) held.push(lease);
      }
  member.tap.cutOff();
  run.heldAtCrash.push(held.length);
  run.crashes.push({ atMs, held });
  run.members.splice(run.members.indexOf(member), 1);
  await sleep(run.random() * 300);
  await startMember(run);
}

/** Every event of a topic, with its extensions, read back through the broker. */
async function readTopic(client: EddyClient, topic: string): Promise<DeliveredEvent[]> {
  const events: DeliveredEvent[] = [];
  if (!(await client.listTopics()).some((t) => t.name === topic)) return events;
  for (const { partition, endOffset } of (await client.describeTopic(topic)).partitions)
    for (let offset = 0; offset < endOffset;) {
      const fetched = await client.fetch(topic, partition, offset);
      events.push(...fetched.events);
      offset = fetched.nextOffset;
    }
  return events;
}

describe('reliability > consumer groups', () => {
  it(
    'keeps redelivering until acked, dead-letters after exactly max.deliveries, never leases an event twice at once and leaves nothing unseen while members crash mid-batch',
    { timeout: 120_000 },
    async () => {
      const seed = Number(process.env['EDDY_GROUP_SEED'] ?? Date.now() % 2 ** 31);
      const broker = await brokers.start();
      const admin = await brokers.client(broker);
      await admin.createTopic(TOPIC, { partitions: PARTITIONS });
      await admin.createSubscription(SUBSCRIPTION, {
        topic: TOPIC,
        type: 'queue',
        from: 'earliest',
        config: {
          'ack.timeout.ms': String(ACK_TIMEOUT_MS),
          'max.deliveries': String(MAX_DELIVERIES),
          'retry.backoff.ms': '20',
          'retry.jitter': '0',
        },
      });
      const run: Run = {
        broker,
        history: new GroupHistory(),
        random: seededRandom(seed),
        errors: {},
        members: [],
        heldAtCrash: [],
        recoveryMs: [],
        crashes: [],
        nextMember: 1,
      };
      const { history, random } = run;
      for (let m = 0; m < MEMBERS; m++) await startMember(run);
      const started = now();

      // Publish at a steady pace while members are cut off at random, 0.3–1 s apart.
      let publishing = true;
      const publisher = await brokers.client(broker);
      const publishingDone = (async () => {
        for (let i = 0; i < EVENTS; i += EVENTS_PER_TICK) {
          const ids = Array.from({ length: Math.min(EVENTS_PER_TICK, EVENTS - i) }, (_, k) => `job-${i + k}`);
          await Promise.all(
            ids.map(async (id) => {
              if (Number(id.slice(4)) % POISON_EVERY === 7) history.poison.add(id);
              const published = await publisher.publish(TOPIC, {
                type: 'com.example.job',
                source: '/reliability',
                id,
              });
              history.idAt.set(eventKey(published.partition, published.baseOffset), id);
            }),
          );
          await sleep(50);
        }
        publishing = false;
      })();
      const crashing = (async () => {
        const stopAt = (): boolean => !publishing && now() - started > 3000;
        while (!stopAt()) {
          await sleep(300 + random() * 700);
          if (stopAt()) break;
          const victim = run.members[Math.floor(random() * run.members.length)];
          if (victim !== undefined) await crash(run, victim);
        }
      })();
      await Promise.all([publishingDone, crashing]);

      // Every event acked or dead-lettered: the ack floor reaches the end of each partition.
      await eventually(
        async () =>
          (await admin.describeSubscription(SUBSCRIPTION)).partitions.every(
            (p) => p.committed === p.endOffset,
          ),
        'the ack floors to reach the end of the topic',
        60_000,
      );
      const elapsedMs = now() - started;
      await sleep(300); // anything still on its way arrives, and counts
      for (const member of [...run.members]) member.dead = true;

      const deadLetters = await readTopic(admin, DEAD_LETTER_TOPIC);
      const dead = new Map<string, number>();
      const dlqFaults: string[] = [];
      for (const d of deadLetters) {
        const ext = d.event.extensions ?? {};
        const key = eventKey(Number(ext['dlqpartition']), Number(ext['dlqoffset']));
        if (dead.has(key)) dlqFaults.push(`${key} dead-lettered twice`);
        dead.set(key, Number(ext['dlqattempts']));
        if (ext['dlqattempts'] !== MAX_DELIVERIES || ext['dlqreason'] !== 'max-deliveries')
          dlqFaults.push(
            `${key} dead-lettered after ${String(ext['dlqattempts'])} deliveries (${String(ext['dlqreason'])})`,
          );
        if (history.idAt.get(key) !== d.event.id) dlqFaults.push(`${key} dead-lettered as ${d.event.id}`);
        const observed = history.leases.get(key) ?? [];
        if (observed.some((lease) => lease.attempt > MAX_DELIVERIES))
          dlqFaults.push(`${key} delivered more than ${MAX_DELIVERIES} times before its dead letter`);
      }
      for (const [key, id] of history.idAt)
        if (history.poison.has(id) && !dead.has(key))
          dlqFaults.push(`poison ${key} (${id}) never dead-lettered`);
      const unluckyGood = [...dead.keys()].filter((key) => !history.poison.has(history.idAt.get(key) ?? ''));

      const { doubleLeased, ackedAgain, numbering } = history.checkLeases();
      const unseen = [...history.idAt]
        .filter(([key]) => !dead.has(key) && !history.ackSent.has(key))
        .map(
          ([key, id]) =>
            `${key} (${id}): ` +
            ((history.leases.get(key) ?? [])
              .map((l) => `attempt ${l.attempt} to ${l.member}, ended by ${l.ending ?? 'nothing'}`)
              .join('; ') || 'never delivered'),
        );
      const phantom = [...history.leases.keys()].filter((key) => !history.idAt.has(key));

      // What the run exercised, so the checks above are not vacuous.
      const all = [...history.leases.values()].flat();
      const deliveries = all.length;
      const redeliveries = all.filter((lease) => lease.attempt > 1).length;
      const timedOut = all.filter((lease) => lease.timedOut).length;
      const nacked = all.filter((lease) => lease.ending === 'nack').length;
      const lateAcks = all.filter((lease) => lease.ackAnsweredMs !== null && !certainlyAcked(lease)).length;
      for (const { atMs, held } of run.crashes)
        for (const lease of held) {
          const next = (history.leases.get(eventKey(lease.partition, lease.offset)) ?? []).find(
            (other) => other.attempt > lease.attempt,
          );
          if (next !== undefined) run.recoveryMs.push(next.receivedMs - atMs);
        }
      const heldTotal = run.heldAtCrash.reduce((sum, n) => sum + n, 0);
      const fullyObservedPoison = [...history.poison].filter((id) => {
        const key = [...history.idAt].find(([, other]) => other === id)?.[0];
        const attempts = new Set((history.leases.get(key ?? '') ?? []).map((lease) => lease.attempt));
        return attempts.size === MAX_DELIVERIES;
      }).length;

      recordFault({
        fault: `queue members cut off mid-batch (${MEMBERS} members, ack timeouts, nacks, late acks)`,
        runs: run.crashes.length,
        acknowledged: history.idAt.size,
        lost: unseen.length,
        duplicated: doubleLeased.length + ackedAgain.length,
        recoveryMs: run.recoveryMs,
        errors: run.errors,
        note:
          `seed ${seed}; ${history.idAt.size} events in ${Math.round(elapsedMs / 100) / 10} s, ${deliveries} deliveries ` +
          `(${redeliveries} repeated); ${run.crashes.length} members cut off holding ${heldTotal} events; ` +
          `${timedOut} deliveries left to time out, ${nacked} nacked, ${lateAcks} acks after the deadline; ` +
          `${dead.size} dead letters, all after ${MAX_DELIVERIES} deliveries (${history.poison.size} poison, ` +
          `${fullyObservedPoison} with every delivery seen; ${unluckyGood.length} others whose ${MAX_DELIVERIES} ` +
          `deliveries all went unacked); double leases ${doubleLeased.length}, redelivered after an ack ` +
          `${ackedAgain.length}, unseen ${unseen.length}`,
      });
      console.log(
        `consumer groups: seed ${seed}, ${run.crashes.length} cut-offs holding ${heldTotal} events, ` +
          `${deliveries} deliveries, ${dead.size} dead letters, ${Math.round(elapsedMs)} ms`,
      );

      expect(doubleLeased).toEqual([]);
      expect(ackedAgain).toEqual([]);
      expect(numbering).toEqual([]);
      expect(dlqFaults).toEqual([]);
      expect(unseen).toEqual([]);
      expect(phantom).toEqual([]);
      // A dead letter never follows an ack that counted.
      expect([...dead.keys()].filter((key) => history.leases.get(key)?.some(certainlyAcked))).toEqual([]);
      expect(Object.keys(run.errors).filter((name) => !name.startsWith('client: '))).toEqual([]);
      // The faults happened: members died holding events, deadlines passed, nacks and late acks came.
      expect(run.crashes.length).toBeGreaterThanOrEqual(5);
      expect(heldTotal).toBeGreaterThan(0);
      expect(run.recoveryMs.length).toBeGreaterThan(0);
      expect(timedOut).toBeGreaterThan(0);
      expect(nacked).toBeGreaterThan(0);
      expect(lateAcks).toBeGreaterThan(0);
      expect(fullyObservedPoison).toBeGreaterThan(0);
    },
  );
});
