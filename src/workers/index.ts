export {
  RING_HEADER_BYTES,
  RING_CAPACITY_BYTES_MAX,
  RING_CAPACITY_BYTES_MIN,
  RingConsumer,
  RingProducer,
  createRing,
  type RingVisitor,
} from './ring.js';
export { WorkerHost, partitionHost, type WorkerHostOptions } from './worker-host.js';
