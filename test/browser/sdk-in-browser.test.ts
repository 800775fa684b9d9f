/**
 * The SDK in a real browser: headless Chromium loads the built client (dist/)
 * as native ES modules, with an import map for its one dependency, and talks
 * to a real broker over the browser's own WebSocket. Proves the SDK needs no
 * Node built-in, no bundler shim and no polyfill.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../src/server/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const CHROMIUM = '/usr/bin/chromium';
const root = path.resolve('.');
const tempDir = useTempDirs('browser');

/** Files the page may load: the built SDK and its dependency, nothing else of the repository. */
const served: Readonly<Record<string, string>> = {
  '/dist/': path.join(root, 'dist'),
  '/flatbuffers/': path.join(root, 'node_modules/flatbuffers/mjs'),
};

const page = (brokerUrl: string): string => `<!doctype html>
<script type="importmap">{ "imports": { "flatbuffers": "/flatbuffers/flatbuffers.js" } }</script>
<script type="module">
  import { connect, dataAsJson } from '/dist/src/client/index.js';
  try {
    const client = await connect(${JSON.stringify(brokerUrl)}, { lingerMs: 0 });
    await client.createTopic('browser.orders', { partitions: 2 });
    const seen = [];
    const subscription = await client.subscribe('browser.orders', { from: 'earliest' }, ({ event }) => {
      seen.push(dataAsJson(event));
    });
    const acks = [];
    for (let i = 0; i < 5; i++) {
      acks.push(await client.publish('browser.orders', { type: 'test.order', source: '/browser', data: { i } }, { key: 'k' + i }));
    }
    while (seen.length < 5) await new Promise((resolve) => setTimeout(resolve, 10));
    const fetched = await client.fetch('browser.orders', acks[0].partition, 0);
    await subscription.close();
    await client.close();
    window.result = { acks, seen, fetchedIds: fetched.events.map((e) => e.event.id), hasWebSocket: typeof WebSocket };
  } catch (error) {
    window.result = { error: String(error && error.stack || error) };
  }
</script>`;

function staticServer(html: string): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html' }).end(html);
      return;
    }
    const prefix = Object.keys(served).find((p) => url.pathname.startsWith(p));
    const base = prefix === undefined ? undefined : served[prefix];
    const file =
      base === undefined || prefix === undefined
        ? undefined
        : path.join(base, url.pathname.slice(prefix.length));
    if (file === undefined || !file.startsWith(base as string) || !fs.existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const available = fs.existsSync(CHROMIUM);
if (!available) {
  if (process.env['EDDY_REQUIRE_SERVICES'] === '1')
    throw new Error(`${CHROMIUM} is missing; .ci/run installs it`);
  console.error(`skipping the browser test: ${CHROMIUM} is not installed (apt-get install chromium)`);
}

describe.skipIf(!available)('client > in a browser', () => {
  let broker: RunningBroker;
  let server: http.Server;
  let browser: Browser;

  beforeAll(async () => {
    broker = await startBroker({ port: 0, dataDir: tempDir(), topicDefaults: { segmentBytes: 1024 * 1024 } });
    server = await staticServer(page(broker.url));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    await broker?.close();
  });

  it('publishes, subscribes and fetches from Chromium over its own WebSocket', async () => {
    const tab = await browser.newPage();
    const { port } = server.address() as AddressInfo;
    await tab.goto(`http://localhost:${port}/`);
    await tab.waitForFunction(
      () => (globalThis as unknown as { result?: unknown }).result !== undefined,
      undefined,
      {
        timeout: 30_000,
      },
    );
    const result = (await tab.evaluate(() => (globalThis as unknown as { result: unknown }).result)) as {
      error?: string;
      acks: { partition: number; baseOffset: number }[];
      seen: { i: number }[];
      fetchedIds: string[];
      hasWebSocket: string;
    };
    expect(result.error).toBeUndefined();
    expect(result.hasWebSocket).toBe('function');
    expect(result.acks).toHaveLength(5);
    expect(result.seen.map((d) => d.i).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(result.fetchedIds.length).toBeGreaterThan(0);
  }, 60_000);
});
