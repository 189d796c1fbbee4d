/**
 * `renderMetrics` (src/prometheus.ts), the one writer of the exposition
 * format behind every `/metrics`. Starts no server.
 */
import assert from "node:assert/strict";
import { renderMetrics } from "../../src/prometheus.ts";

Deno.test("renderMetrics writes headers, labelled and suffixed samples, escapes and special values", () => {
  const text = renderMetrics([
    {
      name: "jobs_total",
      type: "counter",
      help: "Jobs done.",
      samples: [
        { labels: [["queue", 'a"b\\c\nd'], ["n", 2]], value: 3 },
        { value: NaN },
      ],
    },
    { name: "idle", type: "gauge", help: "No samples: the header stays.", samples: [] },
    {
      name: "lat_seconds",
      type: "histogram",
      help: "Latency.",
      samples: [
        { suffix: "_bucket", labels: [["le", 0.5]], value: 1 },
        { suffix: "_bucket", labels: [["le", "+Inf"]], value: 2 },
        { suffix: "_sum", value: Infinity },
        { suffix: "_count", value: 2 },
      ],
    },
  ]);
  assert.equal(
    text,
    [
      "# HELP jobs_total Jobs done.",
      "# TYPE jobs_total counter",
      'jobs_total{queue="a\\"b\\\\c\\nd",n="2"} 3',
      "jobs_total NaN",
      "# HELP idle No samples: the header stays.",
      "# TYPE idle gauge",
      "# HELP lat_seconds Latency.",
      "# TYPE lat_seconds histogram",
      'lat_seconds_bucket{le="0.5"} 1',
      'lat_seconds_bucket{le="+Inf"} 2',
      "lat_seconds_sum +Inf",
      "lat_seconds_count 2",
      "",
    ].join("\n"),
  );
  assert.equal(renderMetrics([]), "\n");
});
