/**
 * The CSV reader of `deno task seed` (RFC 4180): one column names the key,
 * the others make the value. Kept instead of `csv-parse` for measured reasons
 * (record line numbers, stored values, speed): docs/cli.md, "The CSV reader".
 *
 * @module
 */
import { bad, good, SeedInputError, type SeedRecord } from "./record.ts";

/**
 * An RFC 4180 CSV reader fed text in chunks: quoted fields may hold commas,
 * `""` and newlines, and may span chunks. The first record is the header.
 */
export class CsvReader {
  #keyColumn: string;
  #fromLine: number;
  #header: string[] | undefined;
  #keyIndex = -1;
  #fields: string[] = [];
  #field = "";
  #inQuotes = false;
  #quoteSeen = false; // a quote inside a quoted field: either "" or the closing quote
  #fieldStarted = false;
  #line = 1; // physical line of the current character
  #recordLine = 1; // line the current record started on
  #afterCr = false;
  #maxRecord: number;
  #recordChars = 0; // characters of the current record's finished fields

  constructor(keyColumn: string, fromLine: number, maxRecord: number) {
    this.#keyColumn = keyColumn;
    this.#fromLine = fromLine;
    this.#maxRecord = maxRecord;
  }

  push(text: string, out: SeedRecord[]): void {
    let i = 0;
    const n = text.length;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (this.#inQuotes) {
        if (this.#quoteSeen) {
          this.#quoteSeen = false;
          if (c === 34) {
            this.#field += '"';
            i++;
            continue;
          }
          this.#inQuotes = false; // the quote closed the field; handle c below
        } else if (c === 34) {
          this.#quoteSeen = true;
          i++;
          continue;
        } else {
          // Copy a run of ordinary quoted characters at once.
          let j = text.indexOf('"', i);
          if (j === -1) j = n;
          const run = text.slice(i, j);
          for (let k = 0; k < run.length; k++) if (run.charCodeAt(k) === 10) this.#line++;
          this.#field += run;
          i = j;
          continue;
        }
      }
      if (c === 44) { // ,
        this.#endField();
        this.#afterCr = false;
        i++;
      } else if (c === 10) { // \n
        if (!this.#afterCr) this.#endRecord(out);
        this.#afterCr = false;
        this.#line++;
        this.#recordLine = this.#line;
        i++;
      } else if (c === 13) { // \r
        this.#endRecord(out);
        this.#afterCr = true;
        i++;
      } else if (c === 34 && !this.#fieldStarted) {
        this.#inQuotes = true;
        this.#fieldStarted = true;
        this.#afterCr = false;
        i++;
      } else {
        // Copy a run of unquoted characters at once.
        let j = i;
        while (j < n) {
          const d = text.charCodeAt(j);
          if (d === 44 || d === 10 || d === 13) break;
          j++;
        }
        this.#field += text.slice(i, j);
        this.#fieldStarted = true;
        this.#afterCr = false;
        i = j;
      }
    }
    if (this.#recordChars + this.#field.length > this.#maxRecord) {
      throw new SeedInputError(
        `the CSV record starting on line ${this.#recordLine} is longer than ${this.#maxRecord} ` +
          "characters (a quote never closed?)",
      );
    }
  }

  end(out: SeedRecord[]): void {
    if (this.#inQuotes && !this.#quoteSeen) {
      out.push(bad(this.#recordLine, "unterminated quoted field at end of input"));
      return;
    }
    this.#inQuotes = false;
    this.#quoteSeen = false;
    if (this.#fieldStarted || this.#fields.length > 0) this.#endRecord(out);
  }

  #endField(): void {
    this.#recordChars += this.#field.length + 1;
    this.#fields.push(this.#field);
    this.#field = "";
    this.#fieldStarted = false;
  }

  #endRecord(out: SeedRecord[]): void {
    const blank = this.#fields.length === 0 && !this.#fieldStarted;
    this.#endField();
    const fields = this.#fields;
    this.#fields = [];
    this.#recordChars = 0;
    const line = this.#recordLine;
    if (blank) return;
    if (this.#header === undefined) {
      this.#header = fields;
      this.#keyIndex = fields.indexOf(this.#keyColumn);
      if (this.#keyIndex === -1) {
        throw new SeedInputError(
          `--key-column ${JSON.stringify(this.#keyColumn)} is not in the CSV header (${
            fields.map((f) => JSON.stringify(f)).join(", ")
          })`,
        );
      }
      return;
    }
    if (line < this.#fromLine) return;
    const header = this.#header;
    if (fields.length !== header.length) {
      out.push(bad(line, `expected ${header.length} fields, got ${fields.length}`));
      return;
    }
    const value: Record<string, string> = {};
    for (let i = 0; i < header.length; i++) {
      if (i !== this.#keyIndex) value[header[i]!] = fields[i]!;
    }
    out.push(good(line, fields[this.#keyIndex]!, value));
  }
}
