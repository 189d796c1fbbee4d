/**
 * Typed errors of kvedge. Callers branch on the class or on `code`, never on
 * the message text. The base and the codes are in `errors/kvedge_error.ts`,
 * failures of the world in `errors/world.ts`, failures about data in
 * `errors/data.ts`.
 *
 * @module
 */
export { type ErrorCode, KvedgeError } from "./errors/kvedge_error.ts";
export {
  BucketNotFoundError,
  ClosedError,
  ConflictError,
  OverflowError,
  OverloadedError,
  PermissionError,
  TooLargeError,
  UnavailableError,
  UnsupportedError,
  UnsupportedRuntimeError,
} from "./errors/world.ts";
export {
  BookmarkError,
  type BookmarkErrorCode,
  DecodeError,
  KeyError,
  LoaderError,
  ProjectionMapError,
  ValidationError,
  type ValidationIssue,
} from "./errors/data.ts";
