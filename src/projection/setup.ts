/**
 * What a projection runner sets up before it reads, and again after it loses
 * its consumer: the target bucket, the source's incarnation, and the durable
 * pull consumer whose ack floor is the checkpoint.
 *
 * @module
 */
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  type JetStreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import { ensureKvBucket } from "../kv_create.ts";
import { KvedgeError } from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { isConsumerNotFound, isStreamNotFound } from "../nats_errors.ts";
import { kvStreamName } from "../kv_layout.ts";
import type { CreateBucketOptions } from "../types.ts";
import type { Projection } from "./types.ts";

/**
 * Ensures the projection's target bucket: nothing if it exists, created as
 * `target.create` says if not, `BUCKET_NOT_FOUND` if `create` is false.
 */
export async function ensureTarget(
  jsm: JetStreamManager,
  projection: Projection<unknown>,
): Promise<void> {
  const { bucket, create } = projection.target;
  try {
    await jsm.streams.info(kvStreamName(bucket));
    return;
  } catch (err) {
    if (!isStreamNotFound(err)) {
      throw mapNatsError(err, { action: `run projection "${projection.name}"`, bucket });
    }
  }
  if (create === false) {
    throw new KvedgeError(
      "BUCKET_NOT_FOUND",
      `Cannot run projection "${projection.name}": target bucket "${bucket}" does not exist`,
    );
  }
  const c: CreateBucketOptions = create === true ? {} : create;
  try {
    // The stream `nats kv add` makes (src/kv_create.ts): each tool accepts the other's bucket.
    await ensureKvBucket(jsm, bucket, {
      replicas: c.replicas ?? 1,
      history: c.history ?? 10,
      ttlMs: c.ttlMs ?? 0,
      maxBytes: c.maxBytes ?? 0,
      maxValueSize: c.maxValueSize ?? 0,
      storage: c.storage === "memory" ? "memory" : "file",
    });
  } catch (err) {
    throw mapNatsError(err, { action: `create target bucket "${bucket}"`, bucket });
  }
}

/**
 * The source's stream info (its incarnation and last sequence);
 * `BUCKET_NOT_FOUND` if the source does not exist.
 */
export async function readSource(
  jsm: JetStreamManager,
  { stream, projectionName }: { stream: string; projectionName: string },
): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    if (isStreamNotFound(err)) {
      throw new KvedgeError(
        "BUCKET_NOT_FOUND",
        `Cannot run projection "${projectionName}": source stream "${stream}" does not exist`,
        { cause: err },
      );
    }
    throw mapNatsError(err, { action: `run projection "${projectionName}"`, bucket: stream });
  }
}

/** The durable consumer a runner reads through. */
export interface ConsumerSpec {
  /** The projection's name, for error messages. */
  projection: string;
  /** The source stream. */
  stream: string;
  /** The consumer's durable name. */
  durable: string;
  /** The filter subject, if the source is filtered. */
  filter: string | undefined;
  /** The consumer's description, naming the projection and its target. */
  description: string;
}

/**
 * Creates or binds the durable consumer (deleting it first with
 * `fromStart`); its ack floor is the checkpoint. `CONFLICT` if an existing
 * consumer was made for another filter or target. A new consumer starts after
 * `resumeAfter()`, if that gives a sequence, else at the first event.
 */
export async function bindConsumer(
  jsm: JetStreamManager,
  c: ConsumerSpec,
  opts: { fromStart: boolean; ackWaitMs: number; resumeAfter: () => number | undefined },
): Promise<ConsumerInfo> {
  if (opts.fromStart) {
    try {
      await jsm.consumers.delete(c.stream, c.durable);
    } catch (err) {
      if (!isConsumerNotFound(err)) throw err;
    }
  }
  let info: ConsumerInfo | undefined;
  try {
    info = await jsm.consumers.info(c.stream, c.durable);
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
  }
  const ackWaitNanos = opts.ackWaitMs * 1_000_000;
  if (info) {
    const filter = info.config.filter_subject || undefined;
    if (filter !== c.filter || info.config.description !== c.description) {
      // Binding would resume another projection's checkpoint against this target.
      throw new KvedgeError(
        "CONFLICT",
        `Cannot run projection "${c.projection}": consumer "${c.durable}" on ` +
          `"${c.stream}" was made for ${JSON.stringify(info.config.description ?? "")} ` +
          `with filter ${JSON.stringify(filter ?? "")}; run it from the start to recreate it`,
      );
    }
    if (info.config.ack_wait !== ackWaitNanos || info.config.max_ack_pending !== 1) {
      info = await jsm.consumers.update(c.stream, c.durable, {
        ack_wait: ackWaitNanos,
        max_ack_pending: 1,
      });
    }
  } else {
    const after = opts.resumeAfter();
    const config: Partial<ConsumerConfig> = {
      durable_name: c.durable,
      description: c.description,
      ack_policy: AckPolicy.Explicit,
      ack_wait: ackWaitNanos,
      max_ack_pending: 1,
      max_deliver: -1,
      ...(c.filter ? { filter_subject: c.filter } : {}),
      ...(after !== undefined
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    };
    info = await jsm.consumers.add(c.stream, config);
  }
  return info;
}
