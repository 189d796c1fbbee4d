/**
 * Applying one source event to a projection's target, idempotently: the
 * fold (`map`) on the target's states before the event, writes fenced by
 * the source sequence, compare-and-set on the revision the fold saw (see
 * {@linkcode applyEvent}).
 *
 * @module
 */
import { assertKey } from "../keys.ts";
import { isWrongLastSequence } from "../nats_errors.ts";
import { ConflictError, ProjectionMapError } from "../errors.ts";
import { describe } from "../describe.ts";
import {
  isFenced,
  type ProjectionTarget,
  type SourcePosition,
  type TargetState,
} from "./target.ts";
import type {
  Projection,
  ProjectionContext,
  ProjectionEntry,
  ProjectionEvent,
  ProjectionWrite,
} from "./types.ts";

/** A fold that loses this many compare-and-sets in a row gives the event back for a later retry. */
const MAX_CONFLICTS_PER_EVENT = 64;

/** What applying one event did. */
export interface ApplyOutcome {
  /** Writes made (puts and delete markers). */
  applied: number;
  /** Writes skipped because the target already held this event's result or a later one. */
  skipped: number;
  /** Whether `map` returned nothing (the event does not concern the target). */
  ignored: boolean;
  /** Compare-and-sets lost (each one re-ran `map` on fresh state). */
  conflicts: number;
  /**
   * Whether the event was skipped whole: `map` read a key that a later event
   * of the same source incarnation has written, so this one was applied
   * before (the writes `map` returned count as `skipped`).
   */
  superseded: boolean;
}

/** One normalized write. */
interface Write {
  key: string;
  delete: boolean;
  data: Uint8Array | undefined;
}

/**
 * What applying events needs besides the event: the target, the projection,
 * and the source incarnation.
 */
export interface ApplyRun<V> {
  /** The target's reads and fenced writes. */
  target: ProjectionTarget;
  /** The fold (`map`) and the codec of its values. */
  projection: Projection<V>;
  /** Incarnation of the source stream, recorded with every write. */
  epoch: string;
  /** Passed to `map` as `ctx.signal`; default: never aborted. */
  signal?: AbortSignal;
}

/**
 * Applies one source event to the target, idempotently:
 *
 * 1. `map(event, ctx)` runs; `ctx.get()` reads target states and remembers
 *    them (the fold's inputs). A key this very event already wrote (an
 *    earlier attempt was interrupted between its writes) is shown as it was
 *    before the event, so every attempt folds on the same inputs.
 * 2. If a key `map` read carries a later event's sequence (same
 *    incarnation), the event was applied before and is skipped whole: its
 *    fold saw values from after it. Otherwise, for each key returned: if the
 *    target's entry already carries this event's sequence or a later one,
 *    the write is skipped.
 * 3. Otherwise it is written with compare-and-set on the revision the fold
 *    saw. A lost compare-and-set means someone else wrote in between: the
 *    state is re-read and `map` runs again.
 *
 * Failures of `map` or of its result are {@linkcode ProjectionMapError}s;
 * NATS failures propagate unchanged (the caller retries).
 *
 * @example
 * ```ts ignore
 * const run = { target, projection, epoch: "ORDERS@2025-01-01T00:00:00Z" };
 * const outcome = await applyEvent(run, event);
 * ```
 */
export async function applyEvent<V>(
  run: ApplyRun<V>,
  event: ProjectionEvent,
): Promise<ApplyOutcome> {
  const outcome: ApplyOutcome = {
    applied: 0,
    skipped: 0,
    ignored: false,
    conflicts: 0,
    superseded: false,
  };
  for (;;) {
    const attempt = new FoldAttempt(run, event);
    const writes = await attempt.fold();
    if (attempt.superseded) {
      // Events are applied in order, so a later event's write means this one
      // was done. Delivered again (a checkpoint the server lost, a replay),
      // its fold read values from after it: the keys later events did not
      // write would get it a second time, or a result it never had.
      outcome.superseded = true;
      outcome.skipped += writes.length;
      outcome.ignored = writes.length === 0;
      return outcome;
    }
    if (writes.length === 0) {
      outcome.ignored = true;
      return outcome;
    }
    if (await attempt.readMoved(writes)) {
      // Another runner moved a key this fold only read: fold again on the real value.
      outcome.conflicts++;
      continue;
    }
    // Writes already made for this event are fenced now and will be skipped.
    if (await attempt.write(writes, outcome)) return outcome;
  }
}

/**
 * One attempt at folding an event: the states its `map` read, and its
 * writes. A lost compare-and-set ends the attempt; the next starts afresh.
 */
class FoldAttempt<V> {
  readonly #run: ApplyRun<V>;
  readonly #event: ProjectionEvent;
  readonly #position: SourcePosition;
  /** Each key's state as this attempt found it. */
  readonly #seen = new Map<string, TargetState>();
  /** What `map` is shown of each key: its state before this event. */
  readonly #views = new Map<string, TargetState>();
  /**
   * Keys whose state came from memory: a write to one is checked by its
   * compare-and-set, a key only read must be checked before writing others.
   */
  readonly #fromMemory = new Set<string>();
  /** A read of `ctx.get()` that failed: the world's failure, even if `map` rethrew it. */
  #worldError: unknown;
  /** Whether `map` read a key that a later event wrote (see `ApplyOutcome.superseded`). */
  #superseded = false;

  constructor(run: ApplyRun<V>, event: ProjectionEvent) {
    this.#run = run;
    this.#event = event;
    this.#position = { seq: event.seq, epoch: run.epoch };
  }

  /** Whether `map` read a key that a later event of this source incarnation wrote. */
  get superseded(): boolean {
    return this.#superseded;
  }

  /**
   * Runs `map` on the target's states; its writes, checked and encoded (none
   * if it failed on values from after a superseded event: that is moot).
   */
  async fold(): Promise<Write[]> {
    const { projection } = this.#run;
    const ctx: ProjectionContext<V> = {
      signal: this.#run.signal ?? new AbortController().signal,
      get: (key: string) => this.#get(key),
    };
    let result;
    try {
      result = await projection.map(this.#event, ctx);
    } catch (err) {
      // A read failure that surfaced through map is the world's, not the map's.
      if (this.#worldError !== undefined) throw this.#worldError;
      if (this.#superseded) return [];
      throw new ProjectionMapError(
        `Cannot apply event ${this.#event.seq} of projection "${projection.name}": map threw ${
          describe(err)
        }`,
        this.#event.seq,
        err,
      );
    }
    try {
      return normalize(result, { projection, seq: this.#event.seq });
    } catch (err) {
      if (this.#superseded) return [];
      throw err;
    }
  }

  /** Whether a key the fold read from memory, and does not write, has moved since. */
  async readMoved(writes: Write[]): Promise<boolean> {
    const written = new Set(writes.map((w) => w.key));
    for (const key of this.#fromMemory) {
      if (written.has(key)) continue;
      const now = await this.#run.target.read(key, { fresh: true });
      if (now.revision !== this.#seen.get(key)!.revision) return true;
    }
    return false;
  }

  /**
   * Makes `writes`, each fenced and compare-and-set on the revision the fold
   * saw, counting them in `outcome`. `false` when one lost its
   * compare-and-set (the event must be folded again).
   */
  async write(writes: Write[], outcome: ApplyOutcome): Promise<boolean> {
    const { target, projection } = this.#run;
    for (const w of writes) {
      let state = this.#seen.get(w.key);
      if (!state) {
        state = await target.read(w.key);
        this.#seen.set(w.key, state);
      }
      if (isFenced(state, this.#position)) {
        outcome.skipped++;
        continue;
      }
      const fence = { position: this.#position, expectedRevision: state.revision };
      try {
        if (w.delete) await target.delete(w.key, fence);
        else await target.put(w.key, { data: w.data!, fence });
        outcome.applied++;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        outcome.conflicts++;
        target.forget(w.key);
        if (outcome.conflicts >= MAX_CONFLICTS_PER_EVENT) {
          throw new ConflictError(
            `Cannot apply event ${this.#event.seq} of projection "${projection.name}": ` +
              `"${w.key}" changed under it ${outcome.conflicts} times in a row`,
            { key: w.key, expected: state.revision, cause: err },
          );
        }
        return false;
      }
    }
    return true;
  }

  /** `ctx.get()`: the key's entry as `map` may see it. */
  async #get(key: string): Promise<ProjectionEntry<V> | undefined> {
    const { target, projection, epoch } = this.#run;
    assertKey(key, `read "${key}" from projection target "${target.bucket}"`);
    let state = this.#seen.get(key);
    if (!state) {
      state = target.remembered(key);
      if (state) this.#fromMemory.add(key);
      else state = await this.#world(() => target.read(key, { fresh: true }));
      this.#seen.set(key, state);
      // A key's source sequences only grow: even a remembered state proves it.
      if (state.sourceEpoch === epoch && state.sourceSeq > this.#event.seq) {
        this.#superseded = true;
      }
    }
    let view = this.#views.get(key);
    if (!view) {
      view = state;
      if (state.sourceEpoch === epoch && state.sourceSeq === this.#event.seq) {
        // This event's own write, left by an attempt that did not finish
        // (a kill, a lost connection, a lost compare-and-set on another
        // key): the fold reads what the key held before it, as that
        // attempt did, so the event's other keys get the same values.
        const revision = state.revision;
        view = await this.#world(() => target.readBefore(key, revision));
      }
      this.#views.set(key, view);
    }
    return visibleEntry(view, { epoch, projection });
  }

  /** Runs a read of the target, keeping its failure as the world's. */
  async #world(read: () => Promise<TargetState>): Promise<TargetState> {
    try {
      return await read();
    } catch (err) {
      this.#worldError = err;
      throw err;
    }
  }
}

/** The entry `map` sees: only values this projection's source incarnation produced. */
function visibleEntry<V>(
  state: TargetState,
  { epoch, projection }: { epoch: string; projection: Projection<V> },
): ProjectionEntry<V> | undefined {
  // An entry from another incarnation of the source (or a foreign writer) is
  // not a valid fold input: the fold restarts from nothing, like a replay.
  if (state.operation !== "PUT" || state.sourceEpoch !== epoch || state.data === undefined) {
    return undefined;
  }
  return {
    key: state.key,
    value: projection.codec.decode(state.data),
    revision: state.revision,
    sourceSeq: state.sourceSeq,
    createdMs: state.createdMs,
  };
}

/** The writes `map` returned for the event at `seq`, checked. */
function normalize<V>(
  result: unknown,
  { projection, seq }: { projection: Projection<V>; seq: number },
): Write[] {
  if (result === null || result === undefined) return [];
  const items = Array.isArray(result) ? result : [result];
  const fail = (reason: string, cause?: unknown): never => {
    throw new ProjectionMapError(
      `Cannot apply event ${seq} of projection "${projection.name}": ${reason}`,
      seq,
      cause,
    );
  };
  const keys = new Set<string>();
  const writes: Write[] = [];
  for (const item of items as unknown[]) {
    if (item === null || item === undefined) continue;
    if (typeof item !== "object") {
      fail("map must return { key, value }, { key, delete: true } or null");
    }
    const w = item as Partial<ProjectionWrite<V>> & { delete?: unknown; value?: unknown };
    try {
      assertKey(w.key, `write the projection's target`);
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err), err);
    }
    const key = w.key as string;
    if (keys.has(key)) fail(`map returned key "${key}" twice`);
    keys.add(key);
    if (w.delete === true) {
      writes.push({ key, delete: true, data: undefined });
      continue;
    }
    if (!("value" in w) || w.value === undefined) {
      fail(`map returned key "${key}" without a value (use { key, delete: true } to delete)`);
    }
    let data: Uint8Array;
    try {
      data = projection.codec.encode(w.value as V);
    } catch (err) {
      return fail(`the value for "${key}" cannot be encoded: ${describe(err)}`, err);
    }
    writes.push({ key, delete: false, data });
  }
  return writes;
}
