/** Parsers for command-line values: each throws commander's InvalidArgumentError with a one-line reason. */
import { InvalidArgumentError, Option } from 'commander';

/** `--url` (or EDDY_URL): where the broker is. */
export const urlOption = (): Option =>
  new Option('--url <url>', 'broker URL').env('EDDY_URL').default('http://127.0.0.1:7070');

export function positiveInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(number) || number < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  }
  return number;
}

export function portNumber(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number > 65535) {
    throw new InvalidArgumentError(`expected a port from 0 to 65535, got "${value}"`);
  }
  return number;
}

export function nonNegativeInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(number)) {
    throw new InvalidArgumentError(`expected a non-negative integer, got "${value}"`);
  }
  return number;
}

/** `--config name=value ...` as a settings object. */
export function configEntries(entries: readonly string[] = []): Record<string, string> {
  const config: Record<string, string> = {};
  for (const entry of entries) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError(`--config expects name=value, got "${entry}"`);
    config[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return config;
}
