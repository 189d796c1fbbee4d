/**
 * `describe(err)`: an error as one line, `Name: message`, for logs and
 * status fields (no stack).
 *
 * @module
 */

/** An error as one line, `Name: message`; anything else as `String(value)`. */
export function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
