/**
 * The other thread of `ring-cross-thread` (bench/micro/ring.ts): attaches the consuming end of
 * the ring in `workerData`, drains it as messages come (reading each message's first and last
 * byte, so that none is skipped unread) until the ring is closed and empty, then posts how many
 * messages it read.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingConsumer } from '../../src/workers/ring.js';

const consumer = new RingConsumer(workerData as SharedArrayBuffer);
let messages = 0;
let checksum = 0;
const visit = (view: Uint8Array): void => {
  messages++;
  checksum = (checksum + (view[0] ?? 0) + (view[view.length - 1] ?? 0)) | 0;
};
while (await consumer.whenReadable()) consumer.drain(visit);
parentPort?.postMessage({ messages, checksum });
