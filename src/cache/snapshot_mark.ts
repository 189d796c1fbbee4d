/**
 * Which revision the warm-start snapshot file holds (`SnapshotMark`): the
 * revision of the snapshot loaded or last saved, so that a save with nothing
 * new is skipped. Written only by src/cache/warm_start.ts, through `mark`.
 *
 * @module
 */

/**
 * The revision the snapshot file holds, -1 before any load or save.
 *
 * @example
 * ```ts ignore
 * const mark = new SnapshotMark();
 * mark.mark(42);
 * mark.holds(42); // true: saving at 42 again writes nothing new
 * ```
 */
export class SnapshotMark {
  #revision = -1;

  /** Whether the snapshot file already holds revision `rev`. */
  holds(rev: number): boolean {
    return rev === this.#revision;
  }

  /** The snapshot file now holds revision `rev` (loaded from it, or written). */
  mark(rev: number): void {
    this.#revision = rev;
  }
}
