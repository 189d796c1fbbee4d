/**
 * CSV: the seed's own reader (`scripts/seed/csv.ts`, `CsvReader`) against
 * `csv-parse` (its stream API with `info`, `relax_column_count`,
 * `skip_empty_lines`, `max_record_size`: what the seed would need) on the same
 * text in 64 KiB chunks, with the same record handling (header → key column,
 * the other columns → the value). In this process, no server: parse time
 * only. Variants alternate; the text has quoted fields with `""` and commas
 * (every 10th row) and with a newline (every 97th). It also records what
 * each reader makes of the seed tests' inputs where they disagree (line
 * numbers, stray quotes), in the JSON's `raw.disagreements`. Why the reader
 * is kept: docs/cli.md, "The CSV reader".
 *
 * @module
 */
import { parse } from "csv-parse";
import { CsvReader } from "../seed/csv.ts";
import type { SeedRecord } from "../seed/record.ts";
import { ratioRow, type Scenario, stat } from "./_harness.ts";

const CHUNK_CHARS = 64 * 1024;
const MAX_RECORD = 1 << 20;

/** A CSV of `rows` records after an `id,name,email,note,score` header, as 64 KiB chunks. */
export function csvChunks(rows: number): { chunks: string[]; bytes: number } {
  const lines = ["id,name,email,note,score"];
  for (let i = 0; i < rows; i++) {
    const note = i % 10 === 0
      ? '"says ""hi"", twice"'
      : i % 97 === 0
      ? '"two\nlines"'
      : `plain note ${i}`;
    lines.push(`u${i},Name ${i},user${i}@example.com,${note},${(i * 7919) % 1000}`);
  }
  const text = lines.join("\n") + "\n";
  const chunks: string[] = [];
  for (let i = 0; i < text.length; i += CHUNK_CHARS) chunks.push(text.slice(i, i + CHUNK_CHARS));
  return { chunks, bytes: new TextEncoder().encode(text).length };
}

/** Records read by `CsvReader`, as `deno task seed` reads them. */
export function readWithCsvReader(chunks: string[]): number {
  const reader = new CsvReader("id", 1, MAX_RECORD);
  let n = 0;
  const out: SeedRecord[] = [];
  for (const chunk of chunks) {
    reader.push(chunk, out);
    n += out.length;
    out.length = 0;
  }
  reader.end(out);
  return n + out.length;
}

/** Records read by csv-parse, turned into the same key and value objects. */
export async function readWithCsvParse(chunks: string[]): Promise<number> {
  const parser = parse({
    info: true,
    relax_column_count: true,
    skip_empty_lines: true,
    max_record_size: MAX_RECORD,
  });
  let n = 0;
  const reading = (async () => {
    let header: string[] | undefined;
    let keyIndex = -1;
    for await (const { record } of parser as AsyncIterable<{ record: string[] }>) {
      if (header === undefined) {
        header = record;
        keyIndex = header.indexOf("id");
        continue;
      }
      n++;
      if (record.length !== header.length) continue;
      const value: Record<string, string> = {};
      for (let i = 0; i < header.length; i++) if (i !== keyIndex) value[header[i]!] = record[i]!;
    }
  })();
  for (const chunk of chunks) parser.write(chunk);
  parser.end();
  await reading;
  return n;
}

/**
 * The inputs of the seed tests on which the two readers disagree, and what
 * each makes of them: `[line, key, value or problem]` per record (csv-parse's
 * line is `info.lines`; its error, if any, last).
 */
export const DISAGREEMENTS: Record<string, string> = {
  "CRLF, a field spanning lines 3-4, a bad record on line 5": [
    "id,name,note",
    'u1,Ann,"hello, world"',
    'u2,Bob,"two',
    'lines"',
    "u3,too,many,fields",
    'u4,Dee,"say ""hi"""',
    "",
  ].join("\r\n"),
  "LF, a field spanning lines 3-4": 'id,v,w\n1,"a,b","x""y"\n2,"multi\nline",z\n\n3,plain,\n',
  "stray quotes": 'id,v\n1,a"b\n2,"ab"cd\n3,ok\n',
};

/** What `CsvReader` makes of `text`. */
export function recordsOfCsvReader(text: string): unknown[] {
  const reader = new CsvReader("id", 1, MAX_RECORD);
  const out: SeedRecord[] = [];
  reader.push(text, out);
  reader.end(out);
  return out.map((r) =>
    r.problem === undefined ? [r.line, r.key, r.value] : [r.line, null, r.problem]
  );
}

/** What csv-parse makes of `text`, with the options the seed would need to go on past a bad record. */
export async function recordsOfCsvParse(text: string): Promise<unknown[]> {
  const parser = parse({
    info: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
  });
  const out: unknown[] = [];
  const reading = (async () => {
    let header: string[] | undefined;
    for await (
      const { record, info } of parser as AsyncIterable<
        { record: string[]; info: { lines: number } }
      >
    ) {
      if (header === undefined) {
        header = record;
        continue;
      }
      if (record.length !== header.length) {
        out.push([info.lines, null, `expected ${header.length} fields, got ${record.length}`]);
        continue;
      }
      const value: Record<string, string> = {};
      for (let i = 1; i < header.length; i++) value[header[i]!] = record[i]!;
      out.push([info.lines, record[0]!, value]);
    }
  })().catch((err: Error) => out.push(["error", err.message]));
  parser.write(text);
  parser.end();
  await reading;
  return out;
}

/** The CSV scenario. */
export const scenario: Scenario = {
  name: "csv",
  title: "the seed's CSV reader vs csv-parse, parse time of the same text (no server)",
  async run(ctx) {
    const rows = ctx.quick ? 5_000 : 100_000;
    const { chunks, bytes } = csvChunks(rows);
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let r = 0; r < ctx.reps; r++) {
      ctx.log(`csv: rep ${r + 1}/${ctx.reps} (${rows} rows each)`);
      const order = r % 2 === 0 ? ["ours", "theirs"] : ["theirs", "ours"];
      for (const v of order) {
        const t0 = performance.now();
        const n = v === "ours" ? readWithCsvReader(chunks) : await readWithCsvParse(chunks);
        const ms = performance.now() - t0;
        if (n !== rows) throw new Error(`csv: ${v} read ${n} of ${rows} rows`);
        (v === "ours" ? ours : theirs).push((rows * 1000) / ms);
      }
    }
    const disagreements: Record<string, unknown> = {};
    for (const [name, text] of Object.entries(DISAGREEMENTS)) {
      const csvReader = recordsOfCsvReader(text);
      const csvParse = await recordsOfCsvParse(text);
      disagreements[name] = { csvReader, csvParse };
      ctx.log(`csv: ${name}: CsvReader ${JSON.stringify(csvReader)}`);
      ctx.log(`csv: ${name}: csv-parse ${JSON.stringify(csvParse)}`);
    }
    return {
      name: "csv",
      title: this.title,
      params: { rows, bytes, chunkChars: CHUNK_CHARS, reps: ctx.reps },
      rows: [
        ratioRow(
          `CSV ${rows / 1000}k rows (${(bytes / 1e6).toFixed(1)} MB)`,
          "rows/s",
          stat(ours),
          "csv-parse",
          stat(theirs),
          "ge",
          1,
        ),
      ],
      raw: { csvReaderRowsPerSecond: ours, csvParseRowsPerSecond: theirs, disagreements },
    };
  },
};
