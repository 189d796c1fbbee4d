// Run by Node 20 in the scratch project: opening a cache (TCP, then
// WebSocket, which Node 20 has no global for) must fail at once with the
// typed error, not hang. Prints one JSON line per attempt.
import { openCache } from "@kvedge/kvedge";

for (const servers of [process.argv[2], process.argv[3]]) {
  try {
    await openCache({ servers, bucket: "b", create: true, local: { maxItems: 1 } });
    console.log(JSON.stringify({ servers, opened: true }));
  } catch (err) {
    console.log(JSON.stringify({ servers, name: err.name, code: err.code, missing: err.missing }));
  }
}
