/**
 * The on-disk fixture stream format (see `fixtures/README.md`). A stream is a directory:
 *
 * - `messages.ndjson` — one JSON line per NATS message: `seq`, `offsetMs` since the first
 *   message, `subject`, `headers`, and where its payload lies in `payloads.bin`;
 * - `payloads.bin` — the raw payloads, concatenated (no base64: fixtures stay small);
 * - `manifest.ndjson` — ground-truth labels, one JSON line per labelled message, kept apart
 *   from the messages because labels never travel with images;
 * - `stream.json` — metadata: name, generator, seed, count, the command that made it.
 *
 * Both data files are append-only, so a recording that dies midway is still readable.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { IMAGE_ID_HEADER } from "./contract.ts";

/** Version tag written to `stream.json`. */
export const STREAM_FORMAT = "inspect-stream/1";
/** Message index file name. */
export const MESSAGES_FILE = "messages.ndjson";
/** Concatenated payload bytes file name. */
export const PAYLOADS_FILE = "payloads.bin";
/** Ground-truth label file name. */
export const MANIFEST_FILE = "manifest.ndjson";
/** Metadata file name. */
export const INFO_FILE = "stream.json";
/** Every file a stream consists of (what `force` replaces). */
export const STREAM_FILES: readonly string[] = [
  MESSAGES_FILE,
  PAYLOADS_FILE,
  MANIFEST_FILE,
  INFO_FILE,
];

/** NATS headers: name → values (NATS allows repeated headers). */
export const HeadersSchema = z.record(z.string().min(1), z.array(z.string()));
/** Recorded message headers. */
export type MessageHeaders = z.infer<typeof HeadersSchema>;

/** One line of `messages.ndjson`. */
export const MessageLineSchema = z.object({
  seq: z.number().int().min(0),
  offsetMs: z.number().finite().min(0),
  subject: z.string().min(1),
  headers: HeadersSchema,
  payload: z.object({
    offset: z.number().int().min(0),
    length: z.number().int().min(0),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  }).strict(),
}).strict();
/** One line of `messages.ndjson`, parsed. */
export type MessageLine = z.infer<typeof MessageLineSchema>;

/** A message read back from a stream. */
export interface RecordedMessage {
  /** 0-based position in the stream. */
  seq: number;
  /** Milliseconds since the first message of the stream. */
  offsetMs: number;
  /** NATS subject it was (or is to be) published on. */
  subject: string;
  /** NATS headers. */
  headers: MessageHeaders;
  /** The raw payload (an encoded image, or whatever arrived). */
  payload: Uint8Array;
}

/** A message to append: a {@link RecordedMessage} whose `seq` the writer assigns. */
export type NewMessage = Omit<RecordedMessage, "seq">;

/**
 * Error codes a consumer is expected to report for invalid inputs: the image decoder's
 * codes plus the two header checks of the ingest stage.
 */
export const ExpectedErrorSchema = z.enum([
  "empty",
  "too_large",
  "undecodable",
  "unsupported_type",
  "too_many_pixels",
  "missing_image_id",
  "duplicate_image_id",
]);
/** Expected rejection code of an invalid input. */
export type ExpectedError = z.infer<typeof ExpectedErrorSchema>;

const seq = z.number().int().min(0);
const imageId = z.string().min(1);

/**
 * One line of `manifest.ndjson`: the ground truth of message `seq`. Valid images are
 * `normal` or `anomalous` (with an optional defect name); inputs that must be rejected are
 * `invalid` with the error code expected, and may lack an image id.
 */
export const ManifestEntrySchema = z.discriminatedUnion("label", [
  z.object({ seq, imageId, label: z.literal("normal") }).strict(),
  z.object({ seq, imageId, label: z.literal("anomalous"), defect: z.string().min(1).optional() })
    .strict(),
  z.object({
    seq,
    imageId: imageId.nullable(),
    label: z.literal("invalid"),
    expectedError: ExpectedErrorSchema,
  }).strict(),
]);
/** Ground truth of one message. */
export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;

/** `stream.json`. */
export const StreamInfoSchema = z.object({
  format: z.literal(STREAM_FORMAT),
  /** Human name, e.g. `synthetic-line`. */
  name: z.string().min(1),
  /** What produced it, e.g. `synthetic-line/1` or `record`. */
  generator: z.string().min(1),
  /** PRNG seed of a generated stream; null for recordings. */
  seed: z.number().int().nullable(),
  /** Number of messages. */
  count: z.number().int().min(0),
  /** The command line that created it. */
  createdBy: z.string().min(1),
  /** Generator parameters, free-form. */
  params: z.record(z.unknown()).default({}),
  /** False while a writer is still open (or died before closing). */
  complete: z.boolean(),
}).strict();
/** Stream metadata. */
export type StreamInfo = z.infer<typeof StreamInfoSchema>;

/** What the creator of a stream says about it; the writer fills in the rest. */
export type StreamDescription = Omit<
  z.input<typeof StreamInfoSchema>,
  "format" | "count" | "complete"
>;

/** Refusal to overwrite an existing stream (or a non-empty directory) without `force`. */
export class StreamExistsError extends Error {
  /** Creates the error for `dir`. */
  constructor(dir: string, what: string) {
    super(`${dir} ${what}; refusing to overwrite it without --force (force: true)`);
    this.name = "StreamExistsError";
  }
}

/** Options of {@link openStreamWriter}. */
export interface StreamWriterOptions {
  /** Replace an existing stream's files in `dir` (other files are left alone). */
  force?: boolean;
  /** Metadata written to `stream.json`. */
  description: StreamDescription;
}

/** Appends messages and labels to a new stream; call {@link StreamWriter.close} at the end. */
export interface StreamWriter {
  /** The stream directory. */
  readonly dir: string;
  /** Messages appended so far. */
  readonly count: number;
  /** Appends a message; returns its `seq`. */
  append(message: NewMessage): Promise<number>;
  /** Appends the ground truth of an already appended message. */
  label(entry: ManifestEntry): Promise<void>;
  /** Flushes, writes the final `stream.json` and returns it. */
  close(): Promise<StreamInfo>;
}

/**
 * Creates `dir` (if needed) and opens a stream writer in it. Refuses, with a
 * {@link StreamExistsError}, if `dir` is not empty unless `force` is set; with `force` the
 * four stream files are replaced.
 */
export async function openStreamWriter(
  dir: string,
  options: StreamWriterOptions,
): Promise<StreamWriter> {
  const description = StreamInfoSchema.omit({ format: true, count: true, complete: true })
    .parse(options.description);
  await assertStreamDirWritable(dir, options.force ?? false);
  await Deno.mkdir(dir, { recursive: true });
  const open = (name: string) =>
    Deno.open(join(dir, name), { write: true, create: true, truncate: true });
  const messages = await open(MESSAGES_FILE);
  const payloads = await open(PAYLOADS_FILE);
  const manifest = await open(MANIFEST_FILE);
  const writeInfo = (count: number, complete: boolean): Promise<StreamInfo> => {
    const info: StreamInfo = { format: STREAM_FORMAT, ...description, count, complete };
    return Deno.writeTextFile(join(dir, INFO_FILE), JSON.stringify(info, null, 2) + "\n")
      .then(() => info);
  };
  await writeInfo(0, false);

  const encoder = new TextEncoder();
  // Image ids per seq, so labels can be checked against the message they describe.
  const imageIds: (string | null)[] = [];
  let payloadOffset = 0;
  let lastOffsetMs = 0;
  let closed = false;
  const assertOpen = () => {
    if (closed) throw new Error(`stream writer for ${dir} is already closed`);
  };

  return {
    dir,
    get count() {
      return imageIds.length;
    },
    async append(message: NewMessage): Promise<number> {
      assertOpen();
      if (!Number.isFinite(message.offsetMs) || message.offsetMs < lastOffsetMs) {
        throw new RangeError(
          `offsetMs must be finite and non-decreasing: got ${message.offsetMs} after ${lastOffsetMs}`,
        );
      }
      const line: MessageLine = MessageLineSchema.parse({
        seq: imageIds.length,
        offsetMs: message.offsetMs,
        subject: message.subject,
        headers: message.headers,
        payload: {
          offset: payloadOffset,
          length: message.payload.length,
          sha256: sha256Hex(message.payload),
        },
      });
      // Payload first: a crash between the two writes leaves an unreferenced tail, never a
      // line pointing at missing bytes.
      await writeAll(payloads, message.payload);
      await writeAll(messages, encoder.encode(JSON.stringify(line) + "\n"));
      payloadOffset += message.payload.length;
      lastOffsetMs = message.offsetMs;
      imageIds.push(firstHeader(message.headers, IMAGE_ID_HEADER) ?? null);
      return line.seq;
    },
    async label(entry: ManifestEntry): Promise<void> {
      assertOpen();
      const parsed = ManifestEntrySchema.parse(entry);
      if (parsed.seq >= imageIds.length) {
        throw new RangeError(`label for seq ${parsed.seq}, but only ${imageIds.length} messages`);
      }
      if (parsed.imageId !== imageIds[parsed.seq]) {
        throw new Error(
          `label imageId ${
            JSON.stringify(parsed.imageId)
          } does not match message ${parsed.seq}'s ` +
            `${IMAGE_ID_HEADER} ${JSON.stringify(imageIds[parsed.seq])}`,
        );
      }
      await writeAll(manifest, encoder.encode(JSON.stringify(parsed) + "\n"));
    },
    async close(): Promise<StreamInfo> {
      assertOpen();
      closed = true;
      messages.close();
      payloads.close();
      manifest.close();
      return await writeInfo(imageIds.length, true);
    },
  };
}

/**
 * Checks, without writing anything, that a stream may be created in `dir`: it is absent or
 * empty, or `force` is set. Lets commands refuse before connecting anywhere.
 *
 * @throws {StreamExistsError} when `dir` is not empty and `force` is false.
 */
export async function assertStreamDirWritable(dir: string, force: boolean): Promise<void> {
  const present: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) present.push(entry.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (present.length > 0 && !force) {
    const holdsStream = present.some((name) => STREAM_FILES.includes(name));
    throw new StreamExistsError(dir, holdsStream ? "already holds a stream" : "is not empty");
  }
}

/** First value of header `name` (case-insensitive, as NATS header lookups can be). */
export function firstHeader(headers: MessageHeaders, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, values] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted && values.length > 0) return values[0];
  }
  return undefined;
}

/**
 * Reads the messages of the stream in `dir`, in order, checking each line against the schema
 * and each payload against its SHA-256.
 *
 * @throws Error naming the file and line on any inconsistency.
 */
export async function* readStream(dir: string): AsyncGenerator<RecordedMessage> {
  const messagesPath = join(dir, MESSAGES_FILE);
  const payloadsPath = join(dir, PAYLOADS_FILE);
  await assertFile(messagesPath, `${dir} is not a stream directory`);
  await assertFile(payloadsPath, `${dir} is an incomplete stream`);
  const payloads = await Deno.open(payloadsPath, { read: true });
  try {
    let expectedSeq = 0;
    for await (const { lineNumber, value } of readJsonLines(messagesPath)) {
      const where = `${messagesPath}:${lineNumber}`;
      const parsed = MessageLineSchema.safeParse(value);
      if (!parsed.success) {
        throw new Error(`${where}: invalid message line: ${parsed.error.message}`);
      }
      const line = parsed.data;
      if (line.seq !== expectedSeq) {
        throw new Error(`${where}: seq ${line.seq}, expected ${expectedSeq}`);
      }
      expectedSeq++;
      const payload = new Uint8Array(line.payload.length);
      await payloads.seek(line.payload.offset, Deno.SeekMode.Start);
      const read = await readFull(payloads, payload);
      if (read !== payload.length) {
        throw new Error(
          `${where}: ${PAYLOADS_FILE} ends after ${read} of ${payload.length} payload bytes`,
        );
      }
      if (sha256Hex(payload) !== line.payload.sha256) {
        throw new Error(
          `${where}: payload bytes do not match their sha256 (corrupt ${PAYLOADS_FILE})`,
        );
      }
      yield {
        seq: line.seq,
        offsetMs: line.offsetMs,
        subject: line.subject,
        headers: line.headers,
        payload,
      };
    }
  } finally {
    payloads.close();
  }
}

/** Ground truth of a stream. */
export interface Manifest {
  /** Every entry, in file order. */
  entries: ManifestEntry[];
  /** Entries by image id; for a duplicated id, the first entry (the accepted image). */
  byImageId: Map<string, ManifestEntry>;
  /** Entries by message seq. */
  bySeq: Map<number, ManifestEntry>;
}

/** Reads and validates `manifest.ndjson` of the stream in `dir`. */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  await assertFile(path, `${dir} has no ground truth`);
  const manifest: Manifest = { entries: [], byImageId: new Map(), bySeq: new Map() };
  for await (const { lineNumber, value } of readJsonLines(path)) {
    const parsed = ManifestEntrySchema.safeParse(value);
    if (!parsed.success) {
      throw new Error(`${path}:${lineNumber}: invalid manifest entry: ${parsed.error.message}`);
    }
    const entry = parsed.data;
    if (manifest.bySeq.has(entry.seq)) {
      throw new Error(`${path}:${lineNumber}: second entry for seq ${entry.seq}`);
    }
    manifest.entries.push(entry);
    manifest.bySeq.set(entry.seq, entry);
    if (entry.imageId !== null && !manifest.byImageId.has(entry.imageId)) {
      manifest.byImageId.set(entry.imageId, entry);
    }
  }
  return manifest;
}

/** Reads and validates `stream.json` of the stream in `dir`. */
export async function readStreamInfo(dir: string): Promise<StreamInfo> {
  const path = join(dir, INFO_FILE);
  await assertFile(path, `${dir} has no stream metadata`);
  let value: unknown;
  try {
    value = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    throw new Error(`${path}: not JSON: ${error instanceof Error ? error.message : error}`);
  }
  const parsed = StreamInfoSchema.safeParse(value);
  if (!parsed.success) throw new Error(`${path}: invalid stream metadata: ${parsed.error.message}`);
  return parsed.data;
}

/** Lowercase hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Joins a directory and a file name with exactly one slash. */
function join(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, "")}/${name}`;
}

async function assertFile(path: string, context: string): Promise<void> {
  try {
    const stat = await Deno.stat(path);
    if (!stat.isFile) throw new Error(`${context}: ${path} is not a file`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`${context}: ${path} is missing`);
    throw error;
  }
}

/** Parses each non-empty line of an NDJSON file, streaming (recordings can be large). */
async function* readJsonLines(
  path: string,
): AsyncGenerator<{ lineNumber: number; value: unknown }> {
  const file = await Deno.open(path, { read: true });
  let buffered = "";
  let lineNumber = 0;
  const parse = (text: string, truncated: boolean) => {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      const hint = truncated ? " (truncated last line: did a writer die?)" : "";
      throw new Error(
        `${path}:${lineNumber}: not JSON${hint}: ${error instanceof Error ? error.message : error}`,
      );
    }
  };
  // The readable closes the file when it is consumed or cancelled.
  const reader = file.readable.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (buffered + value).split("\n");
      buffered = lines.pop() ?? "";
      for (const text of lines) {
        lineNumber++;
        if (text.trim() !== "") yield { lineNumber, value: parse(text, false) };
      }
    }
    lineNumber++;
    if (buffered.trim() !== "") yield { lineNumber, value: parse(buffered, true) };
  } finally {
    await reader.cancel().catch(() => {});
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<number> {
  let filled = 0;
  while (filled < into.length) {
    const n = await file.read(into.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return filled;
}
