import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { CHANNEL_RING_BYTES, ChannelReceiver, ChannelSender } from '../../src/workers/channel.js';
import { createRing } from '../../src/workers/ring.js';

const channels: MessageChannel[] = [];
afterEach(() => {
  for (const { port1, port2 } of channels.splice(0)) {
    port1.close();
    port2.close();
  }
});

function open(): { sender: ChannelSender; receiver: ChannelReceiver } {
  const ring = createRing(CHANNEL_RING_BYTES);
  const ports = new MessageChannel();
  channels.push(ports);
  return {
    sender: new ChannelSender({ ring, overflow: ports.port1 }),
    receiver: new ChannelReceiver({ ring, overflow: ports.port2 }),
  };
}

/** Sends a message of `length` bytes, each byte `tag`, as a caller with a transient view would. */
function send(sender: ChannelSender, length: number, tag: number): void {
  sender.send(length, (view) => view.fill(tag));
}

function drainTags(receiver: ChannelReceiver): { tag: number; length: number }[] {
  const seen: { tag: number; length: number }[] = [];
  receiver.drain((view) => {
    expect(view.every((byte) => byte === view[0])).toBe(true);
    seen.push({ tag: view[0] as number, length: view.length });
  });
  return seen;
}

describe('workers > channel', () => {
  it('delivers small messages through the ring and large ones by the port, in the order sent', () => {
    const { sender, receiver } = open();
    const lengths = [100, 2 * 1024 * 1024, 16 * 1024, CHANNEL_RING_BYTES + 1, 1];
    lengths.forEach((length, tag) => send(sender, length, tag));
    expect(drainTags(receiver)).toEqual(lengths.map((length, tag) => ({ tag, length })));
  });

  it('keeps the order when the ring is full: later messages, small or large, wait behind the first one that did not fit', async () => {
    const { sender, receiver } = open();
    // Nothing is drained while sending: about 4 MiB of 900 KiB messages fill the ring, the rest queue.
    const lengths = Array.from({ length: 12 }, (_, i) => (i % 4 === 3 ? 3 * 1024 * 1024 : 900 * 1024));
    lengths.forEach((length, tag) => send(sender, length, tag));
    const seen: { tag: number; length: number }[] = [];
    while (seen.length < lengths.length) {
      expect(await receiver.whenReadable()).toBe(true);
      seen.push(...drainTags(receiver));
    }
    expect(seen).toEqual(lengths.map((length, tag) => ({ tag, length })));
  });

  it('rejects an empty message, which would read as one waiting on the port', () => {
    const { sender } = open();
    expect(() => sender.send(0, () => undefined)).toThrow(RangeError);
  });

  it('lets the receiver read what was sent before the sender closed, then reports the end', async () => {
    const { sender, receiver } = open();
    send(sender, 10, 1);
    send(sender, 2 * 1024 * 1024, 2);
    sender.close();
    expect(await receiver.whenReadable()).toBe(true);
    expect(drainTags(receiver)).toEqual([
      { tag: 1, length: 10 },
      { tag: 2, length: 2 * 1024 * 1024 },
    ]);
    expect(await receiver.whenReadable()).toBe(false);
  });
});
