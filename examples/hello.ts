import { ConflictError, openCache } from "../mod.ts";
import { z } from "zod";

// Where `deno task serve` started its embedded nats-server; NATS_URL wins if set.
const servers = Deno.env.get("NATS_URL") ??
  JSON.parse(await Deno.readTextFile(".data/nats/embedded.json")).url;

const User = z.object({ name: z.string(), langs: z.array(z.string()).optional() });
type User = z.infer<typeof User>;

await using users = await openCache<User>({
  servers,
  bucket: "demo", // the bucket `deno task serve` created and serves over HTTP
  local: { maxItems: 10_000, maxBytes: 16 << 20 }, // a bound is required
  schema: User, // checked on write (before any I/O) and on read (a bad value is never served)
});
await users.ready();

const rev = await users.set("user.7", { name: "Grace", langs: ["en"] });
console.log(await users.get("user.7")); // a local hit: no I/O
const entry = await users.getEntry("user.7");
console.log(entry?.revision === rev, entry?.source); // true hit

await users.update("user.7", { name: "Grace Hopper" }, rev); // compare-and-set
try {
  await users.update("user.7", { name: "stale" }, rev); // rev is no longer the latest
} catch (err) {
  if (!(err instanceof ConflictError)) throw err;
  console.log("lost the compare-and-set:", err.code); // CONFLICT
}

// Replay the key's changes from the first write above, then stop.
let seen = 0;
for await (const change of users.changes({ filter: "user.7", fromRevision: rev })) {
  console.log(change.operation, change.key, change.revision, change.value);
  if (++seen === 2) break;
}
console.log(users.status().state, users.stats().hits); // synced 2
