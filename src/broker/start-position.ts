/** Where reading starts in a partition for a start position (earliest, latest, an offset, a time). */
import { BrokerError, type StartPosition } from '../protocol/index.js';
import type { Partition } from './partition.js';

/** The first offset to read; an offset outside the partition is OFFSET_OUT_OF_RANGE, a time past the end is the end. */
export async function resolveStart(log: Partition, start: StartPosition): Promise<number> {
  switch (start.kind) {
    case 'earliest':
      return log.startOffset;
    case 'latest':
      return log.endOffset;
    case 'offset':
      if (start.value < log.startOffset || start.value > log.endOffset)
        throw new BrokerError(
          'OFFSET_OUT_OF_RANGE',
          `offset ${start.value} is outside the partition [${log.startOffset}, ${log.endOffset}]`,
        );
      return start.value;
    case 'time':
      return (await log.offsetForTime(start.value)) ?? log.endOffset;
  }
}
