/**
 * Where a warm-start snapshot is kept: a file, or storage the runtime
 * provides ({@link SnapshotStorage}). `src/snapshot.ts` is the format; this is
 * only its I/O, so that the format runs wherever the storage does.
 *
 * A file goes through `node:fs/promises`, which Deno, Bun and Node all have.
 * It is imported on first use, not at load: a runtime without a filesystem
 * (Cloudflare's workerd, browsers) still loads the library and can keep its
 * snapshot in a storage of its own.
 *
 * @module
 */

/**
 * Storage for one snapshot, for runtimes without a filesystem (e.g. a Durable
 * Object's storage) or to keep it elsewhere. kvedge reads it once at open and
 * replaces it whole at each save.
 *
 * @example
 * ```ts
 * import type { SnapshotStorage } from "./snapshot_file.ts";
 * let held: Uint8Array | undefined;
 * const memory: SnapshotStorage = {
 *   read: () => Promise.resolve(held),
 *   write: (parts) => {
 *     held = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
 *     let at = 0;
 *     for (const part of parts) {
 *       held.set(part, at);
 *       at += part.byteLength;
 *     }
 *     return Promise.resolve();
 *   },
 * };
 * ```
 */
export interface SnapshotStorage {
  /** The bytes last written, or `undefined` when there are none yet. A rejection is reported, never thrown by `openCache`. */
  read(): Promise<Uint8Array | undefined>;
  /**
   * Replaces the stored bytes with `parts` concatenated in order. Must be
   * atomic: whatever happens during the write, a later `read()` returns the
   * old bytes or the new, never a mix (a torn snapshot is refused by its
   * checksum, but then the warm start is lost).
   */
  write(parts: readonly Uint8Array[]): Promise<void>;
}

type Fs = typeof import("node:fs/promises");
let fs: Promise<Fs> | undefined;

/** `node:fs/promises`, loaded on first use. */
function nodeFs(): Promise<Fs> {
  fs ??= import("node:fs/promises").catch((err) => {
    fs = undefined;
    throw new Error(
      "this runtime has no node:fs/promises; give the snapshot a `storage` instead of a `path`",
      { cause: err },
    );
  });
  return fs;
}

/**
 * A snapshot kept in the file at `path`: read whole, written to a temporary
 * file beside it, flushed to disk, then renamed over it.
 *
 * @example
 * ```ts ignore
 * import { fileStorage } from "./snapshot_file.ts";
 * const storage = fileStorage("/var/lib/kvedge/users.snap");
 * console.log((await storage.read())?.byteLength);
 * ```
 */
export function fileStorage(path: string): SnapshotStorage {
  return {
    async read() {
      const { readFile } = await nodeFs();
      try {
        return await readFile(path);
      } catch (err) {
        if ((err as { code?: unknown }).code === "ENOENT") return undefined;
        throw err;
      }
    },
    async write(parts) {
      const { open, rename, rm } = await nodeFs();
      const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
      try {
        const file = await open(tmp, "w");
        try {
          for (const part of parts) {
            let written = 0;
            while (written < part.byteLength) {
              written += (await file.write(part, written, part.byteLength - written)).bytesWritten;
            }
          }
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(tmp, path);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => {});
        throw err;
      }
    },
  };
}

/** The storage a snapshot `where` names: a file path, or the storage itself. */
export function snapshotStorage(where: string | SnapshotStorage): SnapshotStorage {
  return typeof where === "string" ? fileStorage(where) : where;
}

/**
 * `storage` with its first `read()` already started: a replica opened with a
 * snapshot reads the file while it connects and asks for the stream's info,
 * instead of after. The first `read()` returns that read (its rejection is
 * held for it, not left unhandled) and lets it go; later calls read anew.
 *
 * @example
 * ```ts ignore
 * const storage = readAhead(fileStorage("/var/lib/kvedge/users.snap"));
 * await connect(); // the file is read meanwhile
 * const bytes = await storage.read();
 * ```
 */
export function readAhead(storage: SnapshotStorage): SnapshotStorage {
  let first: Promise<Uint8Array | undefined> | undefined = storage.read();
  first.catch(() => {}); // read by the first read() call, which sees the rejection
  return {
    read() {
      const p = first ?? storage.read();
      first = undefined;
      return p;
    },
    write: (parts) => storage.write(parts),
  };
}
