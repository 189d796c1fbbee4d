/**
 * A fan-out of values to listeners and to async iterators with bounded
 * buffers (a slow reader fails instead of growing memory without bound).
 *
 * @module
 */

/** Thrown into an iterator whose reader fell more than its buffer behind. */
export class OverflowError extends Error {
  /** Builds the error. */
  constructor(size: number) {
    super(`Cannot keep up: the reader fell more than ${size} items behind`);
    this.name = "OverflowError";
  }
}

interface Reader<T> {
  push(value: T): void;
  end(): void;
}

/**
 * Fans values out to callbacks and iterators.
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
  readonly #listeners = new Set<(value: T) => void>();
  #closed = false;

  /** Whether anybody listens (so producers can skip building values). */
  get active(): boolean {
    return this.#readers.size > 0 || this.#listeners.size > 0;
  }

  /** Calls `fn` for every value until the returned function is called. */
  listen(fn: (value: T) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Delivers `value` to every listener and iterator. A throwing listener is ignored. */
  emit(value: T): void {
    for (const fn of this.#listeners) {
      try {
        fn(value);
      } catch {
        // A listener's failure must not break the cache or other listeners.
      }
    }
    for (const r of this.#readers) r.push(value);
  }

  /** Ends every iterator. */
  close(): void {
    this.#closed = true;
    for (const r of this.#readers) r.end();
    this.#readers.clear();
    this.#listeners.clear();
  }

  /** An iterator over future values; fails with {@link OverflowError} past `bufferSize` unread values. */
  iterate(options: { signal?: AbortSignal; bufferSize?: number } = {}): AsyncIterableIterator<T> {
    const bufferSize = options.bufferSize ?? 10_000;
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
          error = new OverflowError(bufferSize);
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
