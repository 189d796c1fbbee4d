/**
 * kvedge's projections: `defineProjection()` declares how the messages of a
 * stream (or the changes of a KV bucket) become keys of a target bucket, and
 * `runProjection()` runs it with a durable consumer as its checkpoint, so
 * that edges read the result through `openCache()`. See docs/projections.md.
 *
 * @example Keep the latest event of every subject in a bucket
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { defineProjection, runProjection } from "@kvedge/kvedge/projection";
 * const nc = await connect({ servers: "nats://127.0.0.1:4222" });
 * const latest = defineProjection({
 *   name: "latest-by-subject",
 *   source: { stream: "EVENTS" },
 *   target: "latest",
 *   map: (event) => ({ key: event.subject, value: event.json() }),
 * });
 * const run = await runProjection(nc, latest);
 * console.log(run.status());
 * await run.stop();
 * await nc.close();
 * ```
 *
 * @module
 */
export { defineProjection } from "./src/projection/define.ts";
export { runProjection } from "./src/projection/runner.ts";
export type {
  Projection,
  ProjectionBucketSource,
  ProjectionContext,
  ProjectionEntry,
  ProjectionEvent,
  ProjectionMap,
  ProjectionOptions,
  ProjectionResult,
  ProjectionRunner,
  ProjectionSource,
  ProjectionState,
  ProjectionStatus,
  ProjectionStreamSource,
  ProjectionTargetOptions,
  ProjectionWrite,
  RunProjectionOptions,
} from "./src/projection/types.ts";
export { ProjectionMapError } from "./src/errors.ts";
