# kvedge under the workerd binary (npm package `workerd`): the same Worker and Durable Object as
# wrangler.toml. Bundle first:
#   deno bundle --platform browser --external cloudflare:workers \
#     -o examples/workerd/dist/worker.js examples/workerd/worker.ts
#   node_modules/.bin/workerd serve examples/workerd/config.capnp
# tests/runtimes/workerd_test.ts runs this file (its address, URL and bucket replaced).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .kvedge),
    # Where the Worker may connect: "public" for a NATS server on the internet, "local" for one on
    # this machine's loopback (as here); "private" for RFC 1918 addresses.
    (name = "nats", network = (allow = ["public", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "main") ],
);

const kvedge :Workerd.Worker = (
  modules = [ (name = "worker.js", esModule = embed "dist/worker.js") ],
  compatibilityDate = "2026-11-23",
  globalOutbound = "nats",
  durableObjectNamespaces = [ (className = "KvedgeEdge", uniqueKey = "kvedge-edge") ],
  # The object keeps nothing in storage: its cache is in memory.
  durableObjectStorage = (inMemory = void),
  bindings = [
    (name = "NATS_URL", text = "ws://127.0.0.1:8080"),
    (name = "KVEDGE_BUCKETS", text = "config"),
    # Writes: add a KVEDGE_WRITE_TOKEN binding, e.g. fromEnvironment = "KVEDGE_WRITE_TOKEN".
    (name = "KVEDGE", durableObjectNamespace = "KvedgeEdge"),
  ],
);
