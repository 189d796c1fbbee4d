/**
 * Shared helpers of the security tests (tests/security/): docs/nats-edge.conf
 * as a test server's config, its test-only passwords, and checks that a
 * refusal is a permission error and that no secret leaks.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Cache,
  type CacheEvent,
  type CacheOptions,
  openCache,
  PermissionError,
} from "../mod.ts";
import { createApp } from "../http.ts";
import type { ServerHandle } from "./_setup.ts";

export const DOC_CONFIG = new URL("../docs/nats-edge.conf", import.meta.url);
/** The test-only passwords whose bcrypt hashes are in docs/nats-edge.conf. */
export const PASSWORDS = {
  admin: "kvedge-admin-test-only",
  writer: "kvedge-writer-test-only",
  edge: "kvedge-edge-test-only",
  projector: "kvedge-projector-test-only",
} as const;

/**
 * docs/nats-edge.conf verbatim, minus its host-specific section (listen
 * address, monitoring port, store dir), which the test server generates.
 */
export function docConfig(drop: string[] = []): string {
  const text = Deno.readTextFileSync(DOC_CONFIG);
  const host = /# >>> host-specific[\s\S]*?# <<< host-specific\n/;
  assert.match(text, host, "docs/nats-edge.conf lost its host-specific markers");
  let config = text.replace(host, "");
  for (const subject of drop) {
    const line = `      "${subject}",\n`;
    assert.ok(config.includes(line), `docs/nats-edge.conf does not allow ${subject}`);
    config = config.replaceAll(line, "");
  }
  return config;
}

/** Everything an error says about itself: name, message, stack, and the same for its causes. */
export function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    if (e instanceof Error) {
      parts.push(e.name, e.message, e.stack ?? "");
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join("\n");
}

/** Fails if any of `secrets` appears in `where` (a string, an error, or anything JSON-able). */
export function assertNoSecret(where: unknown, secrets: readonly string[], what: string): void {
  const text = typeof where === "string"
    ? where
    : where instanceof Error
    ? errorText(where)
    : JSON.stringify(where);
  for (const s of secrets) {
    assert.ok(!text.includes(s), `${what} contains a secret: ${text.slice(0, 300)}`);
  }
}

/** Rejection of `p`, or a failure if it resolves. */
export async function rejection(p: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail(`${what} succeeded but should have been refused`);
}

/** Exercises a cache opened with some credentials and checks no secret leaks from it. */
export async function useAndCheck(c: Cache<number>, secrets: readonly string[]): Promise<void> {
  const events: CacheEvent[] = [];
  const ac = new AbortController();
  const collecting = (async () => {
    for await (const e of c.events({ signal: ac.signal })) events.push(e);
  })().catch(() => {});
  await c.ready({ timeoutMs: 10_000 });
  const rev = await c.set("k", 1);
  assert.equal(await c.get("k"), 1);
  assert.equal((await c.getEntry("k"))?.revision, rev);
  assert.deepEqual(await Array.fromAsync(c.keys()), ["k"]);
  assert.equal((await c.history("k")).length, 1);
  const app = createApp({ buckets: { b: { cache: c } }, auth: { anonymousWrites: true } });
  for (const path of ["/metrics", "/v1/stats", "/readyz", "/v1/buckets/b/keys/k"]) {
    const res = await app.request(path);
    assertNoSecret(await res.text(), secrets, `GET ${path}`);
  }
  assertNoSecret(c.status(), secrets, "status()");
  assertNoSecret(c.stats(), secrets, "stats()");
  ac.abort();
  await collecting;
  assertNoSecret(events, secrets, "events()");
}

/** An edge or writer cache on bucket `cfg` of a server running docs/nats-edge.conf. */
export function openAs<T = number>(
  srv: ServerHandle,
  who: "edge" | "writer",
  extra: Partial<CacheOptions<T>> = {},
): Promise<Cache<T>> {
  return openCache<T>({
    servers: srv.url,
    bucket: "cfg",
    local: { maxItems: 1000 },
    connectOptions: { user: who, pass: PASSWORDS[who], inboxPrefix: `_INBOX_${who}` },
    // A permission failure must come from NATS' answer, not from a timeout:
    // with deadlines this long, a timeout would fail the test's time budget first.
    writeTimeoutMs: 60_000,
    ...extra,
  } as CacheOptions<T>);
}

/** Rejection of `p`, which must be a {@link PermissionError} (code PERMISSION). */
export async function assertPermission(
  p: Promise<unknown>,
  what: string,
): Promise<PermissionError> {
  const err = await rejection(p, what);
  assert.ok(
    err instanceof PermissionError,
    `${what}: expected PermissionError, got ${errorText(err).slice(0, 300)}`,
  );
  assert.equal(err.code, "PERMISSION");
  return err;
}

/** A raw nats.js call that must fail with a permissions violation (nats.js wraps it in RequestError). */
export async function assertRawDenied(p: Promise<unknown>, what: string): Promise<void> {
  const err = await rejection(p, what);
  assert.match(errorText(err), /permissions violation/i, `${what}: ${errorText(err)}`);
}
