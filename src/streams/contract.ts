/**
 * The parts of the public NATS image contract that recordings and replays depend on:
 * images arrive on `inspect.<line>.image` with an `Image-Id` header (required, unique within
 * a line) and an optional RFC 3339 `Captured-At` header. Ground-truth labels never travel.
 *
 * @module
 */

/** Header carrying the image id (required, unique within a line). */
export const IMAGE_ID_HEADER = "Image-Id";
/** Header carrying the capture time (RFC 3339, optional). */
export const CAPTURED_AT_HEADER = "Captured-At";

/** Line names are one NATS subject token: no dots, wildcards or whitespace. */
const LINE_NAME = /^[A-Za-z0-9_-]+$/;

/** Throws a clear error unless `line` can be used as a subject token. */
export function assertLineName(line: string): void {
  if (!LINE_NAME.test(line)) {
    throw new Error(
      `invalid line name ${
        JSON.stringify(line)
      }: use letters, digits, '-' or '_' (one subject token)`,
    );
  }
}

/** The subject images of `line` are published on. */
export function imageSubject(line: string): string {
  assertLineName(line);
  return `inspect.${line}.image`;
}

/** The line of an image subject, or `undefined` if `subject` is not `inspect.<line>.image`. */
export function lineOfImageSubject(subject: string): string | undefined {
  const parts = subject.split(".");
  return parts.length === 3 && parts[0] === "inspect" && parts[2] === "image"
    ? parts[1]
    : undefined;
}
