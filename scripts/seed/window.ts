/**
 * The puts a seed has in flight (`loop.ts`): a ring by sequence number of
 * the line each started on and whether it settled well, so that the oldest
 * write not yet acknowledged, and with it the line a stopped run resumes
 * after, is always known.
 *
 * @module
 */

/**
 * At most `size` writes in flight, in the order they started.
 *
 * @example
 * ```ts
 * import { WriteWindow } from "./window.ts";
 * const w = new WriteWindow(2);
 * const seq = w.begin(10);
 * w.settle(seq, true);
 * console.log(w.inFlight, w.oldestPendingLine()); // 0 undefined
 * ```
 */
export class WriteWindow {
  readonly #size: number;
  readonly #line: Float64Array;
  readonly #done: Uint8Array;
  /** The oldest write not yet acknowledged. */
  #head = 0;
  #tail = 0;
  #inFlight = 0;
  #wake: (() => void) | undefined;

  constructor(size: number) {
    this.#size = size;
    this.#line = new Float64Array(size);
    this.#done = new Uint8Array(size);
  }

  /** Whether `size` writes are pending since the oldest unacknowledged one. */
  get full(): boolean {
    return this.#tail - this.#head >= this.#size;
  }

  /** Writes started and not settled. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Records a write of `line` starting; its sequence number. */
  begin(line: number): number {
    const seq = this.#tail++;
    this.#line[seq % this.#size] = line;
    this.#inFlight++;
    return seq;
  }

  /**
   * Write `seq` settled; `handled`: acknowledged, or refused but skipped, so
   * the window may move past it (a write that stops the run holds it).
   */
  settle(seq: number, handled: boolean): void {
    if (handled) {
      this.#done[seq % this.#size] = 1;
      while (this.#head < this.#tail && this.#done[this.#head % this.#size] === 1) {
        this.#done[this.#head % this.#size] = 0;
        this.#head++;
      }
    }
    this.#inFlight--;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Resolves at the next `settle()`. */
  next(): Promise<void> {
    return new Promise<void>((resolve) => (this.#wake = resolve));
  }

  /** The line of the oldest write not acknowledged, or undefined when there is none. */
  oldestPendingLine(): number | undefined {
    return this.#head < this.#tail ? this.#line[this.#head % this.#size]! : undefined;
  }
}
