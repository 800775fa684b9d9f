/**
 * Hand-made WebSocket protocol cases against the broker's endpoint (issue 7;
 * RELIABILITY.md P2, P3), standing in for the Autobahn suite, which cannot run
 * here. Each case is written as raw bytes on a TCP socket after a manual
 * upgrade (fuzz/raw-websocket.ts), so no client library corrects or refuses
 * it, and each checks what the broker answers and that it is still serving
 * afterwards. docs/reliability.md ("Hostile network input") lists the answers.
 */
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, errorCodes, errorNameOf } from '../../src/protocol/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { healthStatus, memoryOf, mib, useBrokerProcess, type BrokerProcess } from './fuzz/broker-process.js';
import { Opcode, RawWebSocket, closePayload, encodeWsFrame, type FrameSpec } from './fuzz/raw-websocket.js';
import { recordFault } from './report.js';

const tempDir = useTempDirs('websocket-limits');
const startBroker = useBrokerProcess();

/** Small, so the oversized cases move little data; uWS's own limit is twice this (gateway.ts). */
const MAX_FRAME_BYTES = 64 * 1024;

const hello = encodeFrame(1, {
  type: 'Hello',
  minVersion: 1,
  maxVersion: 1,
  clientName: 'raw-websocket',
  authToken: null,
});
const listTopics = encodeFrame(2, { type: 'ListTopics' });

/** What the broker did in answer to a case, in one comparable string. */
async function outcome(ws: RawWebSocket, from: number, waitMs = 3000): Promise<string> {
  const ending = await ws.endingWithin(waitMs);
  const parts: string[] = [];
  for (const frame of ws.frames.slice(from)) {
    if (frame.opcode === Opcode.binary) {
      const { message } = decodeFrame(new Uint8Array(frame.payload));
      parts.push(message.type === 'Error' ? `Error ${errorNameOf(message.code)}` : message.type);
    } else if (frame.opcode === Opcode.pong) parts.push(`pong(${frame.payload.length})`);
    else if (frame.opcode === Opcode.close)
      parts.push(`close ${frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 'without code'}`);
    else parts.push(`opcode ${frame.opcode}`);
  }
  if (ending === null) parts.push('open');
  else if (ending.closeFrame === null) parts.push('TCP closed');
  return parts.join(', ');
}

async function connected(broker: BrokerProcess, handshake = true): Promise<RawWebSocket> {
  const ws = await RawWebSocket.connect(broker.url);
  if (!handshake) return ws;
  ws.send({ opcode: Opcode.binary, payload: hello });
  const welcome = await ws.waitFor((f) => f.opcode === Opcode.binary);
  expect(decodeFrame(new Uint8Array(welcome.payload)).message.type).toBe('Welcome');
  return ws;
}

/** Splits `bytes` into fragments: the first with `opcode`, the rest continuations; FIN on the last. */
function fragments(opcode: number, bytes: Uint8Array, count: number): FrameSpec[] {
  const size = Math.ceil(bytes.length / count);
  return Array.from({ length: count }, (_, i) => ({
    opcode: i === 0 ? opcode : Opcode.continuation,
    fin: i === count - 1,
    payload: bytes.subarray(i * size, (i + 1) * size),
  }));
}

interface Case {
  readonly name: string;
  /** Whether the case is a handshaken connection's (default) or a fresh socket's. */
  readonly handshake?: boolean;
  readonly run: (ws: RawWebSocket) => void | Promise<void>;
  /** The broker's answer, as `outcome` describes it. */
  readonly expected: string | RegExp;
  readonly waitMs?: number;
}

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

const cases: readonly Case[] = [
  {
    name: 'Hello in three fragments',
    handshake: false,
    run: (ws) => fragments(Opcode.binary, hello, 3).forEach((f) => ws.send(f)),
    expected: 'Welcome, open',
    waitMs: 500,
  },
  {
    name: 'a request in fragments with a ping and an unsolicited pong between them',
    run: (ws) => {
      const [first, second, third] = fragments(Opcode.binary, listTopics, 3);
      ws.send(first!);
      ws.send({ opcode: Opcode.ping, payload: utf8('between') });
      ws.send(second!);
      ws.send({ opcode: Opcode.pong, payload: utf8('unasked') });
      ws.send(third!);
    },
    expected: 'pong(7), TopicList, open',
    waitMs: 500,
  },
  {
    name: 'a request sent one byte per TCP write',
    run: async (ws) => {
      for (const byte of encodeWsFrame({ opcode: Opcode.binary, payload: listTopics })) {
        ws.write(new Uint8Array([byte]));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    },
    expected: 'TopicList, open',
    waitMs: 500,
  },
  {
    name: 'a ping of 125 bytes (the most a control frame may carry)',
    run: (ws) => ws.send({ opcode: Opcode.ping, payload: new Uint8Array(125).fill(0x61) }),
    expected: 'pong(125), open',
    waitMs: 500,
  },
  {
    name: 'a ping of 126 bytes',
    run: (ws) => ws.send({ opcode: Opcode.ping, payload: new Uint8Array(126).fill(0x61) }),
    expected: /TCP closed|close 1002/,
  },
  {
    name: 'a fragmented ping (control frame without FIN)',
    run: (ws) => ws.send({ opcode: Opcode.ping, fin: false, payload: utf8('a') }),
    expected: /TCP closed|close 1002/,
  },
  {
    name: 'an empty binary message',
    run: (ws) => ws.send({ opcode: Opcode.binary, payload: new Uint8Array(0) }),
    expected: 'Error MALFORMED_FRAME, open',
    waitMs: 500,
  },
  {
    // gateway.ts refuses text messages as MALFORMED_FRAME; it counts towards the close after 8.
    name: 'a text message holding valid UTF-8',
    run: (ws) => ws.send({ opcode: Opcode.text, payload: utf8('{"type":"ListTopics"}') }),
    expected: 'Error MALFORMED_FRAME, open',
    waitMs: 500,
  },
  {
    name: 'a text message holding invalid UTF-8',
    run: (ws) => ws.send({ opcode: Opcode.text, payload: new Uint8Array([0x61, 0xff, 0xfe, 0x62]) }),
    expected: /TCP closed|close 1007/,
  },
  {
    name: 'a text message split inside a UTF-8 sequence across fragments',
    run: (ws) => {
      const bytes = utf8('héllo');
      ws.send({ opcode: Opcode.text, fin: false, payload: bytes.subarray(0, 2) });
      ws.send({ opcode: Opcode.continuation, fin: true, payload: bytes.subarray(2) });
    },
    expected: 'Error MALFORMED_FRAME, open',
    waitMs: 500,
  },
  {
    name: 'a close frame with a normal code and reason',
    run: (ws) => ws.send({ opcode: Opcode.close, payload: closePayload(1000, utf8('bye')) }),
    expected: /close 1000/,
  },
  {
    // RFC 6455 §8.1 says fail with 1007; uWS answers an empty close frame (no code) and closes.
    name: 'a close frame whose reason is not UTF-8',
    run: (ws) =>
      ws.send({ opcode: Opcode.close, payload: closePayload(1000, new Uint8Array([0xc3, 0x28, 0xff])) }),
    expected: 'close without code',
  },
  {
    // §5.5.1 and §7.4: 1002 expected; uWS again answers an empty close frame.
    name: 'a close frame with a one-byte payload',
    run: (ws) => ws.send({ opcode: Opcode.close, payload: new Uint8Array([3]) }),
    expected: 'close without code',
  },
  {
    name: 'a close frame with a code reserved for never being sent (1005)',
    run: (ws) => ws.send({ opcode: Opcode.close, payload: closePayload(1005) }),
    expected: 'close without code',
  },
  {
    name: 'a close frame with a code out of range (999)',
    run: (ws) => ws.send({ opcode: Opcode.close, payload: closePayload(999) }),
    expected: 'close without code',
  },
  {
    name: 'RSV1 set without a negotiated extension',
    run: (ws) => ws.send({ opcode: Opcode.binary, rsv: 4, payload: listTopics }),
    expected: /TCP closed|close 1002/,
  },
  {
    name: 'RSV2 set',
    run: (ws) => ws.send({ opcode: Opcode.binary, rsv: 2, payload: listTopics }),
    expected: /TCP closed|close 1002/,
  },
  {
    name: 'RSV3 set',
    run: (ws) => ws.send({ opcode: Opcode.binary, rsv: 1, payload: listTopics }),
    expected: /TCP closed|close 1002/,
  },
  {
    // §5.1: the server MUST close. uWS does not look at the MASK bit: it takes the first 4 payload
    // bytes as the masking key and waits for 4 more, so the frame is never delivered as sent, and
    // the connection stays open until more bytes make a bad frame or the idle timeout (120 s).
    name: 'an unmasked client frame',
    run: (ws) => ws.send({ opcode: Opcode.binary, masked: false, payload: listTopics }),
    expected: 'open',
    waitMs: 1000,
  },
  {
    name: 'a reserved data opcode (0x3)',
    run: (ws) => ws.send({ opcode: 0x3, payload: listTopics }),
    expected: /TCP closed|close 1002/,
  },
  {
    name: 'a reserved control opcode (0xB)',
    run: (ws) => ws.send({ opcode: 0xb, payload: utf8('x') }),
    expected: /TCP closed|close 1002/,
  },
  {
    name: 'a continuation frame with no message begun',
    run: (ws) => ws.send({ opcode: Opcode.continuation, payload: listTopics }),
    expected: /TCP closed|close 1002/,
  },
  {
    // §5.4: the connection must fail. uWS appends the second data frame to the first message, so
    // the broker sees one message of both payloads, which does not decode: a typed error.
    name: 'a new binary message inside an unfinished fragmented one',
    run: (ws) => {
      ws.send({ opcode: Opcode.binary, fin: false, payload: listTopics.subarray(0, 4) });
      ws.send({ opcode: Opcode.binary, payload: listTopics });
    },
    expected: 'Error MALFORMED_FRAME, open',
    waitMs: 1000,
  },
  {
    name: 'a 64-bit length with its most significant bit set',
    run: (ws) => {
      const header = new Uint8Array([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4]);
      ws.write(header);
    },
    expected: /TCP closed|close 1002|close 1009/,
  },
  {
    name: 'a message one byte over maxFrameBytes',
    run: (ws) => ws.send({ opcode: Opcode.binary, payload: new Uint8Array(MAX_FRAME_BYTES + 1) }),
    expected: `close ${4000 + errorCodes.FRAME_TOO_LARGE.code}`,
  },
  {
    name: 'a message over maxFrameBytes in 64 fragments',
    run: (ws) => fragments(Opcode.binary, new Uint8Array(MAX_FRAME_BYTES + 1), 64).forEach((f) => ws.send(f)),
    expected: `close ${4000 + errorCodes.FRAME_TOO_LARGE.code}`,
  },
  {
    name: 'a header announcing 1 GiB, then only 1 KiB of it',
    run: (ws) =>
      ws.send({ opcode: Opcode.binary, announcedLength: 1024 ** 3, payload: new Uint8Array(1024) }),
    expected: /TCP closed|close 1009/,
  },
  {
    name: 'fragments adding up past twice maxFrameBytes, never finished',
    run: (ws) => {
      for (let i = 0; i < 40; i++)
        ws.send({
          opcode: i === 0 ? Opcode.binary : Opcode.continuation,
          fin: false,
          payload: new Uint8Array(4096),
        });
    },
    expected: /TCP closed|close 1009/,
  },
];

describe('reliability > hostile input > websocket protocol', () => {
  it(`answers ${cases.length} hand-made protocol violations and edge cases, and keeps serving`, async () => {
    const broker = await startBroker(tempDir(), { maxFrameBytes: MAX_FRAME_BYTES });
    const observed: string[] = [];
    const errors: Record<string, number> = {};
    const mismatches: string[] = [];
    for (const c of cases) {
      const ws = await connected(broker, c.handshake ?? true);
      const from = ws.frames.length;
      await c.run(ws);
      const answer = await outcome(ws, from, c.waitMs);
      ws.destroy();
      observed.push(`${c.name}: ${answer}`);
      // The row counts how the broker refused things: typed errors, closes, and the one it ignores.
      for (const part of answer.split(', ')) {
        const key = answer === 'open' ? 'no answer, left open' : part;
        if (/^(Error|close|TCP closed|no answer)/.test(key)) errors[key] = (errors[key] ?? 0) + 1;
      }
      const matches = typeof c.expected === 'string' ? answer === c.expected : c.expected.test(answer);
      if (!matches) mismatches.push(`${c.name}: expected ${String(c.expected)}, got ${answer}`);
      expect(broker.alive(), `the broker died on "${c.name}":\n${broker.output()}`).toBe(true);
    }
    console.log(`websocket cases:\n  ${observed.join('\n  ')}`);
    expect(await healthStatus(broker.url)).toBe(200);
    // A well-behaved connection still works after all of them.
    const ws = await connected(broker);
    ws.send({ opcode: Opcode.binary, payload: listTopics });
    await ws.waitFor(
      (f) => f.opcode === Opcode.binary && decodeFrame(new Uint8Array(f.payload)).requestId === 2,
    );
    ws.destroy();
    expect(mismatches, mismatches.join('\n')).toEqual([]);
    recordFault({
      fault: 'WebSocket protocol violations (hand-made cases)',
      runs: cases.length,
      acknowledged: 0,
      lost: 0,
      duplicated: 0,
      recoveryMs: [],
      errors,
    });
  });

  it('closes a connection announcing an oversized message without waiting for or buffering its bytes', async () => {
    const broker = await startBroker(tempDir(), { maxFrameBytes: MAX_FRAME_BYTES });
    const pid = broker.child.pid as number;
    const before = memoryOf(pid);
    const sockets = await Promise.all(Array.from({ length: 16 }, () => connected(broker)));
    const started = Date.now();
    for (const ws of sockets)
      ws.send({ opcode: Opcode.binary, announcedLength: 2 ** 40, payload: new Uint8Array(16 * 1024) });
    const endings = await Promise.all(sockets.map((ws) => ws.endingWithin(5000)));
    const closeMs = Date.now() - started;
    const after = memoryOf(pid);
    expect(endings.every((ending) => ending !== null)).toBe(true);
    expect(closeMs).toBeLessThan(2000);
    expect(after.rssBytes - before.rssBytes).toBeLessThan(32 * 1024 * 1024);
    expect(broker.alive()).toBe(true);
    recordFault({
      fault: 'WebSocket frames announcing 1 TiB',
      runs: sockets.length,
      acknowledged: 0,
      lost: 0,
      duplicated: 0,
      recoveryMs: [],
      errors: {
        [endings[0]?.closeFrame === null ? 'TCP closed' : `close ${endings[0]?.closeFrame?.code}`]:
          sockets.length,
      },
      note: `all closed within ${closeMs} ms; RSS ${mib(before.rssBytes)} → ${mib(after.rssBytes)} MiB`,
    });
  });

  it('pins at most twice maxFrameBytes per connection for a fragmented message never finished', async () => {
    const broker = await startBroker(tempDir(), { maxFrameBytes: 1024 * 1024 });
    const pid = broker.child.pid as number;
    const connections = 16;
    const before = memoryOf(pid);
    const sockets = await Promise.all(Array.from({ length: connections }, () => connected(broker)));
    // Just under uWS's limit (2 × maxFrameBytes) in 4 KiB fragments, never FIN.
    const fragmentBytes = 4096;
    const count = Math.floor((2 * 1024 * 1024) / fragmentBytes) - 1;
    for (const ws of sockets)
      for (let i = 0; i < count; i++)
        ws.send({
          opcode: i === 0 ? Opcode.binary : Opcode.continuation,
          fin: false,
          payload: new Uint8Array(fragmentBytes).fill(i & 0xff),
        });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const held = memoryOf(pid);
    const open = sockets.filter((ws) => !ws.isClosed).length;
    // One more fragment takes each past the limit.
    for (const ws of sockets)
      ws.send({ opcode: Opcode.continuation, fin: false, payload: new Uint8Array(2 * fragmentBytes) });
    const endings = await Promise.all(sockets.map((ws) => ws.endingWithin(5000)));
    const perConnection = (held.rssBytes - before.rssBytes) / connections;
    console.log(
      `partial messages: ${connections} connections holding ${mib(count * fragmentBytes)} MiB each: ` +
        `RSS ${mib(before.rssBytes)} → ${mib(held.rssBytes)} MiB (${mib(perConnection)} MiB per connection)`,
    );
    expect(open).toBe(connections);
    expect(endings.every((ending) => ending !== null)).toBe(true);
    // The buffer holding the partial message grows by doubling: up to twice uWS's limit, 2 × maxFrameBytes.
    expect(perConnection).toBeLessThan(2 * 2 * 1024 * 1024);
    expect(broker.alive()).toBe(true);
    expect(await healthStatus(broker.url)).toBe(200);
  });

  // Open gap, RELIABILITY.md P3: partial-message bytes pinned should be at most 256 MiB per
  // process whatever the connection count. uWS buffers up to maxPayloadLength (2 × maxFrameBytes,
  // 16 MiB by default) per connection for a message that never finishes and tells the broker
  // nothing until it does, so the sum is bounded only by maxConnections × 16 MiB. What holds is
  // the per-connection bound; the process-wide one needs a WebSocket layer that reports progress.
  it('pins at most 2 × maxFrameBytes of unfinished messages per connection across many connections (default maxFrameBytes)', async () => {
    const broker = await startBroker(tempDir());
    const pid = broker.child.pid as number;
    const connections = 24;
    const fragmentBytes = 64 * 1024;
    const fragments = Math.floor((16 * 1024 * 1024) / fragmentBytes) - 1;
    const before = memoryOf(pid);
    const sockets = await Promise.all(Array.from({ length: connections }, () => connected(broker)));
    const payload = new Uint8Array(fragmentBytes).fill(0x5a);
    const zeroKey = new Uint8Array(4);
    for (const ws of sockets) {
      for (let i = 0; i < fragments; i++)
        ws.send({
          opcode: i === 0 ? Opcode.binary : Opcode.continuation,
          fin: false,
          payload,
          maskKey: zeroKey,
        });
      await ws.flushed();
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const held = memoryOf(pid);
    const open = sockets.filter((ws) => !ws.isClosed).length;
    for (const ws of sockets) ws.destroy();
    const growth = held.rssBytes - before.rssBytes;
    console.log(
      `unfinished messages: ${open} of ${connections} connections held ${mib(fragments * fragmentBytes)} MiB each; ` +
        `RSS ${mib(before.rssBytes)} → ${mib(held.rssBytes)} MiB (+${mib(growth)} MiB)`,
    );
    expect(broker.alive()).toBe(true);
    // 2 × 8 MiB each at most, plus the process's own churn; 256 MiB for the whole process is the open target.
    expect(growth, `${open} connections pinned ${mib(growth)} MiB`).toBeLessThan(
      connections * 2 * 8 * 1024 * 1024 + 64 * 1024 * 1024,
    );
  });
});
