/**
 * Transforms on publish, per topic (docs/filters.md#on-topics):
 *
 *   PUT    /v1/topics/{topic}/transform   {transform: "name[@version]", onTrap?: "reject"|"skip"}
 *   GET    /v1/topics/{topic}/transform   the topic's transform, or {topic, transform: null}
 *   DELETE /v1/topics/{topic}/transform   detach (204 whether or not one was attached)
 *   GET    /v1/transforms                 every topic's transform
 *
 * A bare name is pinned to its latest version when attached. The module is
 * loaded before the attach is stored, so one that does not load is refused
 * (FILTER_FAILED) and the topic keeps what it ran.
 */
import {
  invalidTopicName,
  parseTopicTransformSpec,
  type Broker,
  type TopicTransforms,
} from '../broker/index.js';
import { BrokerError } from '../protocol/index.js';
import { json, parseJsonObject, pathParameter, respond, withBody } from './http-reply.js';
import type { PublishTransforms } from './publish-transforms.js';
import type { TemplatedApp } from './uws.js';

export function attachTransformsApi(
  app: TemplatedApp,
  store: TopicTransforms,
  transforms: PublishTransforms,
  broker: Broker,
  maxBodyBytes: number,
): void {
  app.put('/v1/topics/:topic/transform', (res, req) => {
    const topic = pathParameter(req, 0);
    withBody(res, maxBodyBytes, async (body) => {
      const spec = parseTopicTransformSpec(parseJsonObject(body));
      const problem = invalidTopicName(topic);
      if (problem !== null) throw new BrokerError('INVALID_TOPIC_NAME', `"${topic}": ${problem}`);
      broker.describeTopic(topic); // TOPIC_NOT_FOUND before anything loads
      const transform = await transforms.pin(spec.transform, `topic:${topic}`);
      const { view, created } = await store.put(topic, { transform, onTrap: spec.onTrap });
      // Deleted meanwhile: its detach may have run before this attach, which must not outlive it.
      if (!broker.listTopics().some((described) => described.name === topic)) {
        await store.delete(topic);
        throw new BrokerError('TOPIC_NOT_FOUND', `topic "${topic}" was deleted`);
      }
      return json(created ? 201 : 200, { ...view, created });
    });
  });

  app.get('/v1/topics/:topic/transform', (res, req) => {
    const topic = pathParameter(req, 0);
    respond(res, () => {
      broker.describeTopic(topic);
      return json(200, store.of(topic) ?? { topic, transform: null });
    });
  });

  app.del('/v1/topics/:topic/transform', (res, req) => {
    const topic = pathParameter(req, 0);
    respond(res, async () => {
      broker.describeTopic(topic);
      await store.delete(topic);
      return { status: 204 };
    });
  });

  app.get('/v1/transforms', (res) => respond(res, () => json(200, { transforms: store.list() })));
}
