// The scratch project's check, run by Node and Bun against the npm package as
// installed from its tarball: imports it by name, opens a cache against the
// nats-server at argv[2], writes and reads, and prints one JSON line.
import { openCache, UnsupportedRuntimeError } from "@kvedge/kvedge";
import { createFetchHandler } from "@kvedge/kvedge/http";

const [url, bucket] = process.argv.slice(2);
const cache = await openCache({ servers: url, bucket, create: true, local: { maxItems: 10 } });
const revision = await cache.set("k", { n: 1 });
const entry = await cache.getEntry("k");
await cache.close();
let internals = "importable";
try {
  await import("@kvedge/kvedge/src/open.js");
} catch (err) {
  internals = err.code ?? err.name;
}
console.log(JSON.stringify({
  runtime: typeof Bun === "undefined" ? `node ${process.versions.node}` : `bun ${Bun.version}`,
  revision,
  value: entry?.value,
  source: entry?.source,
  fetchHandler: typeof createFetchHandler,
  runtimeError: new UnsupportedRuntimeError("x", "y").code,
  internals,
}));
