/**
 * A fan-out of values to async iterators with bounded
 * buffers (a slow reader fails instead of growing memory without bound).
 *
 * @module
 */

import { OverflowError } from "./errors.ts";

interface Reader<T> {
  push(value: T): void;
  end(): void;
}

/**
 * Fans values out to iterators.
 *
 * @example
 * ```ts
 * import { Broadcast } from "./broadcast.ts";
 * const b = new Broadcast<number>();
 * const it = b.iterate({ bufferSize: 10 });
 * b.emit(1);
 * console.log((await it.next()).value); // 1
 * b.close();
 * ```
 */
export class Broadcast<T> {
  readonly #readers = new Set<Reader<T>>();
  #closed = false;

  /** Whether anybody listens (so producers can skip building values). */
  get active(): boolean {
    return this.#readers.size > 0;
  }

  /** Delivers `value` to every iterator. */
  emit(value: T): void {
    for (const r of this.#readers) r.push(value);
  }

  /** Ends every iterator. */
  close(): void {
    this.#closed = true;
    for (const r of this.#readers) r.end();
    this.#readers.clear();
  }

  /**
   * An iterator over future values; fails with {@link OverflowError} past
   * `bufferSize` unread values, naming `action` (default "follow changes").
   */
  iterate(
    options: { signal?: AbortSignal; bufferSize?: number; action?: string } = {},
  ): AsyncIterableIterator<T> {
    const bufferSize = options.bufferSize ?? 10_000;
    const action = options.action ?? "follow changes";
    const queue: T[] = [];
    let head = 0;
    let waiting: ((r: IteratorResult<T>) => void) | undefined;
    let done = this.#closed;
    let error: unknown;
    const readers = this.#readers;
    const finish = () => {
      done = true;
      readers.delete(reader);
      options.signal?.removeEventListener("abort", finish);
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        w({ value: undefined, done: true });
      }
    };
    const reader: Reader<T> = {
      push(value) {
        if (done) return;
        if (waiting) {
          const w = waiting;
          waiting = undefined;
          w({ value, done: false });
          return;
        }
        if (queue.length - head >= bufferSize) {
          error = new OverflowError(action, bufferSize);
          finish();
          return;
        }
        queue.push(value);
      },
      end: finish,
    };
    if (!done) readers.add(reader);
    if (options.signal?.aborted) finish();
    else options.signal?.addEventListener("abort", finish, { once: true });
    const it: AsyncIterableIterator<T> = {
      next(): Promise<IteratorResult<T>> {
        if (head < queue.length) {
          const value = queue[head++] as T;
          if (head > 1024 && head * 2 > queue.length) {
            queue.splice(0, head);
            head = 0;
          }
          return Promise.resolve({ value, done: false });
        }
        if (error !== undefined) {
          const e = error;
          error = undefined;
          return Promise.reject(e);
        }
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          waiting = resolve;
        });
      },
      return(): Promise<IteratorResult<T>> {
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
}
