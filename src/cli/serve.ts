/**
 * `eddy serve`: runs a broker node until SIGTERM or SIGINT, then drains
 * (clients are asked to leave, accepted appends are flushed) and exits.
 * Settings come from defaults, then the config file, then `EDDY_*`
 * environment variables, then command-line flags.
 */
import fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { BrokerConfig } from '../server/index.js';
import { nonNegativeInteger, positiveInteger, portNumber } from './arguments.js';

/** Config keys, their environment variable, and how to read a value from the environment. */
const settings = {
  port: { env: 'EDDY_PORT', parse: portNumber },
  host: { env: 'EDDY_HOST', parse: (value: string) => value },
  dataDir: { env: 'EDDY_DATA', parse: (value: string) => value },
  maxFrameBytes: { env: 'EDDY_MAX_FRAME_BYTES', parse: positiveInteger },
  maxBatchEvents: { env: 'EDDY_MAX_BATCH_EVENTS', parse: positiveInteger },
  maxInFlight: { env: 'EDDY_MAX_IN_FLIGHT', parse: positiveInteger },
  maxBufferedBytes: { env: 'EDDY_MAX_BUFFERED_BYTES', parse: positiveInteger },
  slowConsumerBytes: { env: 'EDDY_SLOW_CONSUMER_BYTES', parse: positiveInteger },
  slowConsumerMs: { env: 'EDDY_SLOW_CONSUMER_MS', parse: positiveInteger },
  maxConnections: { env: 'EDDY_MAX_CONNECTIONS', parse: positiveInteger },
  helloTimeoutMs: { env: 'EDDY_HELLO_TIMEOUT_MS', parse: positiveInteger },
  retentionCheckIntervalMs: { env: 'EDDY_RETENTION_CHECK_INTERVAL_MS', parse: positiveInteger },
  shutdownGraceMs: { env: 'EDDY_SHUTDOWN_GRACE_MS', parse: positiveInteger },
  listenRetryMs: { env: 'EDDY_LISTEN_RETRY_MS', parse: positiveInteger },
  workers: { env: 'EDDY_WORKERS', parse: nonNegativeInteger },
  publishQuotaEventsPerSecond: { env: 'EDDY_PUBLISH_QUOTA_EVENTS_PER_SECOND', parse: nonNegativeInteger },
  publishQuotaBytesPerSecond: { env: 'EDDY_PUBLISH_QUOTA_BYTES_PER_SECOND', parse: nonNegativeInteger },
  publishQuotaBurstMs: { env: 'EDDY_PUBLISH_QUOTA_BURST_MS', parse: positiveInteger },
  filterCallTimeoutMs: { env: 'EDDY_FILTER_CALL_TIMEOUT_MS', parse: positiveInteger },
  filterThreadNice: { env: 'EDDY_FILTER_THREAD_NICE', parse: nonNegativeInteger },
} as const;

type SettingName = keyof typeof settings;

function readConfigFile(file: string): Partial<BrokerConfig> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new InvalidArgumentError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new InvalidArgumentError(`config file ${file} does not parse: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidArgumentError(`config file ${file} must hold an object of settings`);
  const known = new Set<string>([...Object.keys(settings), 'topicDefaults', 'serverName']);
  const unknown = Object.keys(value).filter((key) => !known.has(key));
  if (unknown.length > 0)
    throw new InvalidArgumentError(`config file ${file}: unknown settings ${unknown.join(', ')}`);
  return value as Partial<BrokerConfig>;
}

function fromEnvironment(): Partial<BrokerConfig> {
  const values: Partial<Record<SettingName, string | number>> = {};
  for (const [name, setting] of Object.entries(settings) as [SettingName, (typeof settings)[SettingName]][]) {
    const raw = process.env[setting.env];
    if (raw === undefined || raw === '') continue;
    try {
      values[name] = setting.parse(raw);
    } catch (error) {
      throw new InvalidArgumentError(`${setting.env}: ${(error as Error).message}`);
    }
  }
  // Each parser returns the type its BrokerConfig key expects.
  return values as Partial<BrokerConfig>;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('run a broker node (WebSocket protocol, HTTP API and metrics on one port)')
    .addOption(new Option('--port <n>', 'port (default 7070; 0 picks a free one)').argParser(portNumber))
    .addOption(new Option('--host <address>', 'interface to listen on (default 127.0.0.1)'))
    .addOption(new Option('--data <dir>', 'data directory (default ./eddy-data)'))
    .addOption(new Option('--config <file>', 'config file, YAML or JSON'))
    .addOption(
      new Option(
        '--workers <n>',
        'partition worker threads; 0 serves partitions on the main thread',
      ).argParser(nonNegativeInteger),
    )
    .action(
      async (options: { port?: number; host?: string; data?: string; config?: string; workers?: number }) => {
        const config: BrokerConfig = {
          listenRetryMs: 60_000,
          ...(options.config ? readConfigFile(options.config) : {}),
          ...fromEnvironment(),
          ...(options.port === undefined ? {} : { port: options.port }),
          ...(options.host === undefined ? {} : { host: options.host }),
          ...(options.data === undefined ? {} : { dataDir: options.data }),
          ...(options.workers === undefined ? {} : { workers: options.workers }),
        };
        // Loaded here, not at the top: every other command (topics, publish, consume...) starts without
        // the server, its native addon, uWebSockets.js and the WASM host (~200 ms of each CLI start).
        const { startBroker } = await import('../server/index.js');
        const broker = await startBroker(config);
        process.stdout.write(
          `eddy listening on ${broker.url} (WebSocket ${broker.url.replace(/^http/, 'ws')}/v1/ws), data in ${config.dataDir ?? './eddy-data'}\n`,
        );
        await new Promise<void>((resolve) => {
          const stop = (signal: string): void => {
            process.stdout.write(`eddy: ${signal}, draining\n`);
            resolve();
          };
          process.once('SIGTERM', () => stop('SIGTERM'));
          process.once('SIGINT', () => stop('SIGINT'));
        });
        await broker.close();
        process.stdout.write('eddy: stopped\n');
      },
    );
}
