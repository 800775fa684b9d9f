/**
 * A partition worker's thread: owns the partitions the gateway opens on it and
 * runs each request from its inbound ring through the same `LocalPartition`
 * the inline mode uses, answering on its outbound ring. An append copies the
 * event bytes straight from the ring into the log's mapping. The thread ends
 * when the gateway closes the inbound ring, after closing its partitions.
 */
import { workerData } from 'node:worker_threads';
import { LocalPartition, type ReadVisitor } from '../broker/index.js';
import {
  isStorageError,
  type AppendResult,
  type PartitionLogOptions,
  type ReadResult,
} from '../log/index.js';
import {
  ANSWER_HEADER_BYTES,
  APPEND_FIELDS_BYTES,
  AnswerKind,
  Op,
  READ_ANSWER_FIELDS_BYTES,
  REQUEST_HEADER_BYTES,
  dataView,
  readRequestHeader,
  writeAnswerHeader,
  type ErrorAnswer,
} from './partition-messages.js';
import { ChannelReceiver, ChannelSender, type ChannelEnds } from './channel.js';
import { isBrokerError } from '../protocol/index.js';

export interface PartitionWorkerData {
  readonly requests: ChannelEnds;
  readonly answers: ChannelEnds;
}

/** Writes an answer's body after its header; the view is exactly the body's length. */
type BodyWriter = (body: Uint8Array) => void;

const { requests, answers } = workerData as PartitionWorkerData;
const inbox = new ChannelReceiver(requests);
const outbox = new ChannelSender(answers);
const partitions = new Map<number, LocalPartition>();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function answer(
  kind: AnswerKind,
  requestId: number,
  partitionId: number,
  bodyLength: number,
  writeBody: BodyWriter | null,
): void {
  const partition = partitions.get(partitionId);
  const header = {
    kind,
    failed: partition?.failure != null,
    requestId,
    partitionId,
    startOffset: partition?.startOffset ?? 0,
    endOffset: partition?.endOffset ?? 0,
  };
  outbox.send(ANSWER_HEADER_BYTES + bodyLength, (view) => {
    writeAnswerHeader(view, header);
    writeBody?.(view.subarray(ANSWER_HEADER_BYTES));
  });
}

function fail(requestId: number, partitionId: number, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const body: ErrorAnswer = isStorageError(error)
    ? { kind: 'storage', code: error.code, message }
    : isBrokerError(error)
      ? { kind: 'broker', code: error.code, message }
      : { kind: 'other', code: null, message };
  const bytes = encoder.encode(JSON.stringify(body));
  answer(AnswerKind.Failed, requestId, partitionId, bytes.length, (view) => view.set(bytes));
}

function appended(requestId: number, partitionId: number, result: AppendResult): void {
  answer(AnswerKind.Appended, requestId, partitionId, 16, (view) => {
    const fields = dataView(view);
    fields.setFloat64(0, result.baseOffset, true);
    fields.setFloat64(8, result.lastOffset, true);
  });
}

function readAnswer(requestId: number, partitionId: number, read: ReadResult): void {
  answer(AnswerKind.Read, requestId, partitionId, READ_ANSWER_FIELDS_BYTES + read.bytes.length, (view) => {
    const fields = dataView(view);
    fields.setFloat64(0, read.firstOffset, true);
    fields.setFloat64(8, read.nextOffset, true);
    fields.setUint32(16, read.batchCount, true);
    fields.setUint32(20, 0, true);
    view.set(read.bytes, READ_ANSWER_FIELDS_BYTES);
  });
}

function handle(message: Uint8Array): void {
  const fields = dataView(message);
  const { op, requestId, partitionId, durable, compression } = readRequestHeader(fields);
  const done = (): void => answer(AnswerKind.Done, requestId, partitionId, 0, null);
  const failed = (error: unknown): void => fail(requestId, partitionId, error);
  if (op === Op.Open) {
    const { dir, options } = JSON.parse(decoder.decode(message.subarray(REQUEST_HEADER_BYTES))) as {
      dir: string;
      options: PartitionLogOptions;
    };
    LocalPartition.open(dir, options).then((partition) => {
      partitions.set(partitionId, partition);
      done();
    }, failed);
    return;
  }
  const partition = partitions.get(partitionId);
  if (partition === undefined) {
    failed(new Error(`partition ${partitionId} is not open on this worker`));
    return;
  }
  switch (op) {
    case Op.Append: {
      const recordCount = fields.getUint32(REQUEST_HEADER_BYTES, true);
      const keyBytes = fields.getUint32(REQUEST_HEADER_BYTES + 4, true);
      const producerId = fields.getFloat64(REQUEST_HEADER_BYTES + 8, true);
      const sequence = fields.getInt32(REQUEST_HEADER_BYTES + 16, true);
      const keyAt = REQUEST_HEADER_BYTES + APPEND_FIELDS_BYTES;
      // The log copies both before append returns, so ring views are enough.
      partition
        .append(message.subarray(keyAt + keyBytes), {
          recordCount,
          compression,
          key: keyBytes === 0 ? null : message.subarray(keyAt, keyAt + keyBytes),
          durable,
          producerId,
          sequence,
        })
        .then((result) => appended(requestId, partitionId, result), failed);
      return;
    }
    case Op.Read: {
      const offset = fields.getFloat64(REQUEST_HEADER_BYTES, true);
      const maxBytes = fields.getUint32(REQUEST_HEADER_BYTES + 8, true);
      const visit: ReadVisitor = (read) => readAnswer(requestId, partitionId, read);
      partition.read(offset, maxBytes, visit, failed);
      return;
    }
    case Op.OffsetForTime: {
      const timestamp = fields.getFloat64(REQUEST_HEADER_BYTES, true);
      partition
        .offsetForTime(timestamp)
        .then(
          (offset) =>
            answer(AnswerKind.Offset, requestId, partitionId, 8, (view) =>
              dataView(view).setFloat64(0, offset ?? -1, true),
            ),
          failed,
        );
      return;
    }
    case Op.Close:
      partition.close().then(() => {
        done();
        partitions.delete(partitionId);
      }, failed);
      return;
    default:
      failed(new Error(`unknown request ${String(op)}`));
  }
}

async function serve(): Promise<void> {
  while (await inbox.whenReadable()) inbox.drain(handle);
  // The gateway closed the ring: nothing more will come. Close what is still open (flushing it).
  await Promise.allSettled([...partitions.values()].map((partition) => partition.close()));
  outbox.close();
}

void serve();
