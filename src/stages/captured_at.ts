/**
 * The optional `Captured-At` header: kept when it is valid RFC 3339 (with a time zone), else
 * dropped to null. A bad timestamp is not a reason to refuse an otherwise good image.
 *
 * @module
 */
import { z } from "zod/v4";

const Rfc3339 = z.iso.datetime({ offset: true });

/** The header value when it is RFC 3339, else null (absent, empty or malformed). */
export function validCapturedAt(value: string | undefined | null): string | null {
  if (!value) return null;
  return Rfc3339.safeParse(value).success ? value : null;
}
