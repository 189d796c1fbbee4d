/**
 * `src/nats_errors.ts` decides by class and code, never by text: an error
 * that only reads like a NATS failure is none. (The real server's errors are
 * classified in tests/cache/nats_errors_test.ts.) Starts no server.
 */
import assert from "node:assert/strict";
import { PermissionViolationError, RequestError, TimeoutError } from "@nats-io/nats-core";
import {
  isConsumerNotFound,
  isMaxConsumers,
  isMessageTooLarge,
  isPermissionDenied,
  isStreamNotFound,
  isUnanswered,
  isWrongLastSequence,
  jsApiCode,
} from "../../src/nats_errors.ts";

Deno.test("an error that only reads like a NATS failure is not classified as one", () => {
  for (
    const text of [
      "stream not found",
      "consumer not found",
      "wrong last sequence: 3",
      "maximum consumers limit reached",
      'Permissions Violation for Publish to "$JS.API.INFO"',
      "authorization violation",
      "'payload' max_payload size exceeded",
      "message size exceeds maximum allowed",
      "timeout",
      "no responders",
      "JetStream system temporarily unavailable",
    ]
  ) {
    const err = new Error(text);
    assert.equal(jsApiCode(err), undefined, text);
    for (
      const check of [
        isStreamNotFound,
        isConsumerNotFound,
        isWrongLastSequence,
        isMaxConsumers,
        isPermissionDenied,
        isMessageTooLarge,
        isUnanswered,
      ]
    ) {
      assert.equal(check(err), false, `${check.name}(new Error(${JSON.stringify(text)}))`);
    }
  }
});

Deno.test("the cause chain counts: nats.js wraps what happened", () => {
  const denied = new PermissionViolationError("Permissions Violation", "publish", "$JS.API.INFO");
  assert.equal(isPermissionDenied(new RequestError("refused", { cause: denied })), true);
  assert.equal(isUnanswered(new Error("outer", { cause: new TimeoutError() })), true);
});
