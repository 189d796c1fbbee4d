/**
 * Reading a server's log file: where it ends now, what was written since,
 * and its last part for an error message.
 *
 * @module
 */

/** The last `maxBytes` characters of `text`. */
export function tail(text: string, maxBytes: number): string {
  return text.length > maxBytes ? text.slice(text.length - maxBytes) : text;
}

/** The size of the file at `path` in bytes, 0 if it is missing. */
export async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

/** The text of the file at `path` from byte `offset` on, empty if it is missing. */
export async function readFrom(path: string, offset: number): Promise<string> {
  try {
    const bytes = await Deno.readFile(path);
    return new TextDecoder().decode(bytes.subarray(Math.min(offset, bytes.length)));
  } catch {
    return "";
  }
}
