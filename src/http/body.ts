/**
 * A request body reader with a hard size cap. `Content-Length` is only used
 * to refuse early: the stream itself is counted and cut at the limit, so a
 * chunked body, or one whose length header lies, cannot get past it (hono's
 * `bodyLimit` had both bypasses, CVE-2025-59139 and GHSA-9vqf-7f2p-gf9v).
 *
 * @module
 */
import { HttpProblem } from "./problem.ts";

function tooLarge(maxBytes: number): HttpProblem {
  return new HttpProblem("too_large", `the body must be at most ${maxBytes} bytes`);
}

/**
 * Reads the whole body of `request`, at most `maxBytes` bytes; past that it
 * stops reading and throws a `too_large` problem (413). A body that fails
 * mid-way (client gone) is a `bad_request` problem.
 *
 * @example
 * ```ts
 * import { readBodyCapped } from "./body.ts";
 * const bytes = await readBodyCapped(new Request("http://x/", { method: "PUT", body: "{}" }), 1024);
 * console.log(bytes.length); // 2
 * ```
 */
export async function readBodyCapped(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const n = Number(declared);
    if (!/^[0-9]+$/.test(declared.trim()) || !Number.isSafeInteger(n)) {
      throw new HttpProblem("bad_request", "Content-Length is not a valid length");
    }
    if (n > maxBytes) {
      await request.body?.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
  }
  const body = request.body;
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof HttpProblem) throw err;
    throw new HttpProblem("bad_request", "the request body could not be read", { cause: err });
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
