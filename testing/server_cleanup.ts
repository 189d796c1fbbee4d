/**
 * The safety net under the test servers: every process and temporary
 * directory started by `server.ts` or `cluster.ts` is tracked; if the
 * caller fails before stopping its servers, an `unload` handler kills them by
 * PID and removes their temporary directories when the module's runtime
 * ends. Tests and benchmarks kill servers on purpose, so the library's guard
 * against socket resets is installed here too.
 *
 * @module
 */
import type { NatsServerProcess } from "../host/nats_server.ts";
import { guardSocketResets } from "../src/socket_guard.ts";

/** Every `nats-server` process started here and not stopped yet. */
export const live = new Set<NatsServerProcess>();
/** Every temporary directory made here and not removed yet. */
export const tempDirs = new Set<string>();

// Safety net for tests that fail before cleaning up: the module's runtime
// ends, and no nats-server or temp dir may outlive it.
globalThis.addEventListener("unload", () => {
  for (const server of live) {
    if (!server.running) continue;
    try {
      Deno.kill(server.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  for (const dir of tempDirs) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already removed.
    }
  }
});

// Tests and benchmarks kill servers on purpose: the same guard the library installs.
guardSocketResets();

/** Removes a tracked temporary directory (gone already is fine). */
export async function removeDir(dir: string): Promise<void> {
  tempDirs.delete(dir);
  try {
    await Deno.remove(dir, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
