/**
 * Entry of a filter thread: lowers the thread's scheduling priority, then
 * loads the thread's code (sandbox-worker.ts). The priority comes first so
 * that loading the module graph, the largest part of a thread's start, runs
 * at it too. Linux only: there setpriority(2) on the calling thread affects
 * that thread alone, where other systems would lower the whole process.
 */
import os from 'node:os';
import { workerData } from 'node:worker_threads';

const { nice } = workerData as { nice: number };
if (process.platform === 'linux' && nice > 0) os.setPriority(nice);
await import('./sandbox-worker.js');
