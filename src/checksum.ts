/**
 * The checksum of a snapshot file: four xxHash32 lanes over the file's
 * 32-bit little-endian words, each finished by xxHash32's avalanche and
 * mixed with the length, 16 bytes in all. It detects corruption and
 * truncation (any one changed word changes its lane for certain; other
 * changes go unseen with a chance of about 2^-128), not tampering: whoever can
 * write the file can make a replica serve anything anyway. It replaced
 * SHA-256 (Web Crypto), which cost ~5× more than reading the file.
 *
 * @module
 */

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const SEEDS = [P1 + P2, P2, 0, -P1] as const;

/**
 * The 16-byte checksum of `data`: four lanes of 32-bit words (word `w`
 * feeds lane `w % 4`), then the 0–3 bytes left over. `data` must start at a
 * multiple of 4 bytes in its buffer.
 *
 * @example
 * ```ts
 * import { checksum } from "./checksum.ts";
 * const a = checksum(new Uint8Array(16));
 * const b = checksum(new Uint8Array(17));
 * console.log(a.length, a.some((x, i) => x !== b[i])); // 16 true
 * ```
 */
export function checksum(data: Uint8Array): Uint8Array {
  const words = data.byteLength >>> 2;
  const w = new Uint32Array(data.buffer, data.byteOffset, words);
  const lanes = Int32Array.from(SEEDS);
  rounds(w.subarray(0, words & ~3), lanes);
  // The 0–3 words and 0–3 bytes after the last full round, then the length.
  let tail = 0;
  for (let i = words & ~3; i < words; i++) {
    tail = Math.imul(rotl(tail + Math.imul(w[i]!, P3), 17), P1);
  }
  for (let i = words << 2; i < data.byteLength; i++) {
    tail = Math.imul(rotl(tail + Math.imul(data[i]!, P3), 11), P1);
  }
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  for (let k = 0; k < 4; k++) {
    view.setUint32(
      k * 4,
      avalanche(lanes[k]! ^ tail ^ data.byteLength ^ Math.imul(k + 1, P2)),
      true,
    );
  }
  return out;
}

/** xxHash32's rounds over `w` (a multiple of 4 words), four lanes in `lanes`. */
function rounds(w: Uint32Array, lanes: Int32Array): void {
  let v0 = lanes[0]!, v1 = lanes[1]!, v2 = lanes[2]!, v3 = lanes[3]!;
  for (let i = 0; i < w.length; i += 4) {
    v0 = Math.imul(rotl(v0 + Math.imul(w[i]!, P2), 13), P1);
    v1 = Math.imul(rotl(v1 + Math.imul(w[i + 1]!, P2), 13), P1);
    v2 = Math.imul(rotl(v2 + Math.imul(w[i + 2]!, P2), 13), P1);
    v3 = Math.imul(rotl(v3 + Math.imul(w[i + 3]!, P2), 13), P1);
  }
  lanes[0] = v0;
  lanes[1] = v1;
  lanes[2] = v2;
  lanes[3] = v3;
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function avalanche(h: number): number {
  h = Math.imul(h ^ (h >>> 15), P2);
  h = Math.imul(h ^ (h >>> 13), P3);
  return (h ^ (h >>> 16)) >>> 0;
}
