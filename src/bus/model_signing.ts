/**
 * Signing model versions, so a scorer (or a restarted trainer) accepts only what the line's
 * own trainer published. The key comes from the environment, never from a pipeline file:
 *
 * - `INSPECT_MODEL_HMAC_SECRET`: a shared secret (at least 32 characters); HMAC-SHA-256.
 * - `INSPECT_MODEL_NKEY_SEED`: an NKey seed (`S…`); the trainer signs with Ed25519 and the
 *   scorer verifies with the seed's public key.
 * - `INSPECT_MODEL_NKEY_PUBLIC`: the public key alone (`U…`, `A…`, …), for scorers that must
 *   verify but never sign.
 *
 * What is signed binds the blob to its line and version number, so a signed blob cannot be
 * replayed under another version or on another line:
 * `inspect-model-v1\n<line>\n<version>\n<sha256 of the blob, hex>`.
 *
 * @module
 */
import { nkeys } from "nats";
import { z } from "zod/v4";

/** The signature stored with a model version record. */
export const ModelSignatureSchema = z.object({
  alg: z.enum(["hmac-sha256", "ed25519-nkey"]),
  /** Public key that signed (NKey signatures only). */
  key: z.string().optional(),
  /** The signature, base64url. */
  value: z.string().min(1),
}).strict();
/** A model signature. */
export type ModelSignature = z.infer<typeof ModelSignatureSchema>;

/** Environment variables read by {@link modelSigningFromEnv}. */
export const MODEL_SIGNING_ENV = {
  hmacSecret: "INSPECT_MODEL_HMAC_SECRET",
  nkeySeed: "INSPECT_MODEL_NKEY_SEED",
  nkeyPublic: "INSPECT_MODEL_NKEY_PUBLIC",
} as const;

/** Shortest HMAC secret accepted. */
export const MIN_HMAC_SECRET_LENGTH = 32;

/** Signs and verifies model versions of a line with one key. */
export interface ModelSigning {
  /** E.g. `HMAC-SHA-256` or `NKey UABC…`: for logs, never the secret. */
  readonly description: string;
  /** True when this key can sign (the trainer's side). */
  readonly canSign: boolean;
  /** Signs version `version` of `line` whose blob has SHA-256 `sha256` (hex). */
  sign(line: string, version: number, sha256: string): Promise<ModelSignature>;
  /** Null when `signature` is valid for the version, else why not. */
  verify(
    line: string,
    version: number,
    sha256: string,
    signature: ModelSignature | undefined,
  ): Promise<string | null>;
}

const encoder = new TextEncoder();

/** The exact bytes signed for a version. */
export function signedMessage(
  line: string,
  version: number,
  sha256: string,
): Uint8Array<ArrayBuffer> {
  return encoder.encode(`inspect-model-v1\n${line}\n${version}\n${sha256}`);
}

/** SHA-256 of `bytes`, lower-case hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> | null {
  try {
    const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** HMAC-SHA-256 with a shared secret. */
export async function hmacSigning(secret: string): Promise<ModelSigning> {
  if (secret.length < MIN_HMAC_SECRET_LENGTH) {
    throw new Error(
      `${MODEL_SIGNING_ENV.hmacSecret} must be at least ${MIN_HMAC_SECRET_LENGTH} characters`,
    );
  }
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  return {
    description: "HMAC-SHA-256",
    canSign: true,
    async sign(line, version, sha256) {
      const mac = await crypto.subtle.sign("HMAC", key, signedMessage(line, version, sha256));
      return { alg: "hmac-sha256", value: base64url(new Uint8Array(mac)) };
    },
    async verify(line, version, sha256, signature) {
      if (!signature) return "it is unsigned";
      if (signature.alg !== "hmac-sha256") return `it is signed with ${signature.alg}, not HMAC`;
      const mac = fromBase64url(signature.value);
      const ok = mac !== null &&
        await crypto.subtle.verify("HMAC", key, mac, signedMessage(line, version, sha256));
      return ok ? null : "its HMAC signature does not match";
    },
  };
}

/** Ed25519 NKey: a seed signs (and verifies), a public key only verifies. */
export function nkeySigning(seedOrPublic: string): ModelSigning {
  const text = seedOrPublic.trim();
  let pair: ReturnType<typeof nkeys.fromSeed>;
  try {
    pair = text.startsWith("S") ? nkeys.fromSeed(encoder.encode(text)) : nkeys.fromPublic(text);
  } catch (error) {
    throw new Error(
      `the model signing NKey is not a valid NKey seed or public key (${(error as Error).message})`,
    );
  }
  const publicKey = pair.getPublicKey();
  const canSign = text.startsWith("S");
  return {
    description: `NKey ${publicKey}`,
    canSign,
    sign(line, version, sha256) {
      if (!canSign) throw new Error("a public NKey cannot sign model versions");
      const value = base64url(pair.sign(signedMessage(line, version, sha256)));
      return Promise.resolve({ alg: "ed25519-nkey", key: publicKey, value });
    },
    verify(line, version, sha256, signature) {
      if (!signature) return Promise.resolve("it is unsigned");
      if (signature.alg !== "ed25519-nkey") {
        return Promise.resolve(`it is signed with ${signature.alg}, not an NKey`);
      }
      if (signature.key !== undefined && signature.key !== publicKey) {
        return Promise.resolve(`it is signed by NKey ${signature.key}, not ${publicKey}`);
      }
      const bytes = fromBase64url(signature.value);
      let ok = false;
      try {
        ok = bytes !== null && pair.verify(signedMessage(line, version, sha256), bytes);
      } catch {
        ok = false;
      }
      return Promise.resolve(ok ? null : "its NKey signature does not match");
    },
  };
}

/**
 * The signing key configured in the environment, or null when none is. Two keys at once, or
 * a malformed one, is an error naming the variable.
 */
export async function modelSigningFromEnv(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Promise<ModelSigning | null> {
  const set = (Object.values(MODEL_SIGNING_ENV) as string[]).filter((name) => env(name));
  if (set.length > 1) {
    throw new Error(`set one model signing key, got ${set.join(" and ")}`);
  }
  const hmac = env(MODEL_SIGNING_ENV.hmacSecret);
  if (hmac) return await hmacSigning(hmac);
  const seed = env(MODEL_SIGNING_ENV.nkeySeed);
  if (seed) {
    if (!seed.trim().startsWith("S")) {
      throw new Error(`${MODEL_SIGNING_ENV.nkeySeed} must hold an NKey seed (S…)`);
    }
    return nkeySigning(seed);
  }
  const publicKey = env(MODEL_SIGNING_ENV.nkeyPublic);
  if (publicKey) {
    if (publicKey.trim().startsWith("S")) {
      throw new Error(
        `${MODEL_SIGNING_ENV.nkeyPublic} holds a seed: give the public key, keep the seed secret`,
      );
    }
    return nkeySigning(publicKey);
  }
  return null;
}
