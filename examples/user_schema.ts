/**
 * The schema of the `user.*` values in examples/users.ndjson and
 * examples/users.csv, for `deno task seed --schema examples/user_schema.ts`:
 * a module exporting a zod schema as `default` (or as `schema`).
 *
 * @module
 */
import { z } from "zod";

export default z.object({
  name: z.string().min(1),
  plan: z.enum(["free", "pro"]),
});
