/** Parsers for command-line values: each throws commander's InvalidArgumentError with a one-line reason. */
import { InvalidArgumentError } from 'commander';

export function positiveInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(number) || number < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  }
  return number;
}
