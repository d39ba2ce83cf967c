/**
 * Throw-away security material for tests of a secured NATS: TLS certificates made with
 * `openssl` (a CA, a server certificate for 127.0.0.1, a client certificate, and an
 * unrelated CA), NKeys, and operator-mode JWTs signed with NKeys (what `nsc` writes), plus
 * the creds file a user of such a server holds. Nothing here is meant for production keys.
 *
 * @module
 */
import { nkeys } from "nats";

/** An NKey pair (nkeys.js). */
type KeyPair = ReturnType<typeof nkeys.createUser>;

/** PEM files of a throw-away TLS setup, all under one directory. */
export interface TlsFiles {
  /** CA certificate that signed the server and client certificates. */
  ca: string;
  /** Server certificate (SAN 127.0.0.1 and localhost) and key. */
  serverCert: string;
  serverKey: string;
  /** Client certificate and key (signed by {@link ca}). */
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: trusting it must fail. */
  otherCa: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", { args, cwd: dir, stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    throw new Error(
      `openssl is needed for the TLS tests (apt-get install openssl): ${(error as Error).message}`,
    );
  }
  if (!output.success) {
    throw new Error(
      `openssl ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr).trim()}`,
    );
  }
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
    ...["-days", "2", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.pem`],
  ]);
}

async function makeSigned(
  dir: string,
  name: string,
  ca: string,
  extensions: string,
): Promise<void> {
  await openssl(dir, [
    ...["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
    ...["-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.csr`],
  ]);
  await Deno.writeTextFile(`${dir}/${name}.ext`, extensions);
  await openssl(dir, [
    ...["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`],
    ...["-CAcreateserial", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.pem`],
  ]);
}

/** Makes a CA, a server and a client certificate, and an unrelated CA, in `dir`. */
export async function makeTlsFiles(dir: string): Promise<TlsFiles> {
  await makeCa(dir, "ca");
  await makeCa(dir, "other-ca");
  await makeSigned(
    dir,
    "server",
    "ca",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  await makeSigned(dir, "client", "ca", "extendedKeyUsage=clientAuth\n");
  return {
    ca: `${dir}/ca.pem`,
    serverCert: `${dir}/server.pem`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.pem`,
    clientKey: `${dir}/client.key`,
    otherCa: `${dir}/other-ca.pem`,
  };
}

/** A server `tls {}` block requiring TLS and verifying client certificates. */
export function tlsServerBlock(files: TlsFiles): string {
  return [
    "tls {",
    `  cert_file: ${JSON.stringify(files.serverCert)}`,
    `  key_file: ${JSON.stringify(files.serverKey)}`,
    `  ca_file: ${JSON.stringify(files.ca)}`,
    "  verify: true",
    "  timeout: 5",
    "}",
  ].join("\n");
}

/** A user NKey pair: the public key goes in the server configuration, the seed to the client. */
export function newUserNkey(): { publicKey: string; seed: string } {
  const pair = nkeys.createUser();
  return { publicKey: pair.getPublicKey(), seed: new TextDecoder().decode(pair.getSeed()) };
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * Encodes NATS JWT claims (`typ: JWT`, `alg: ed25519-nkey`), signed by `issuer`; the `jti`
 * is the base32 SHA-256 of the claims, as the jwt library computes it.
 */
export async function encodeNatsJwt(
  subject: string,
  name: string,
  nats: Record<string, unknown>,
  issuer: KeyPair,
): Promise<string> {
  const claims: Record<string, unknown> = {
    jti: "",
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats,
  };
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify(claims)),
  );
  claims.jti = base32(new Uint8Array(digest));
  const header = base64url(
    new TextEncoder().encode(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" })),
  );
  const body = base64url(new TextEncoder().encode(JSON.stringify(claims)));
  const signature = issuer.sign(new TextEncoder().encode(`${header}.${body}`));
  return `${header}.${body}.${base64url(signature)}`;
}

/** Operator mode in memory: the server's configuration and one user's creds file text. */
export interface OperatorSetup {
  /** Server configuration (operator JWT, memory resolver preloaded with the account). */
  serverConfig: string;
  /** Creds file of a user of the account (JWT + seed). */
  creds: string;
  /** Creds file of a user signed by another operator's account: the server must refuse it. */
  foreignCreds: string;
}

const UNLIMITED = -1;

async function accountAndUser(
  operator: KeyPair,
  name: string,
  jetstream = true,
): Promise<{ account: KeyPair; accountJwt: string; creds: string }> {
  const storage = jetstream
    ? { mem_storage: UNLIMITED, disk_storage: UNLIMITED, streams: UNLIMITED, consumer: UNLIMITED }
    : {};
  const account = nkeys.createAccount();
  const accountJwt = await encodeNatsJwt(account.getPublicKey(), name, {
    type: "account",
    version: 2,
    limits: {
      subs: UNLIMITED,
      data: UNLIMITED,
      payload: UNLIMITED,
      imports: UNLIMITED,
      exports: UNLIMITED,
      wildcards: true,
      conn: UNLIMITED,
      leaf: UNLIMITED,
      ...storage,
    },
  }, operator);
  const user = nkeys.createUser();
  const userJwt = await encodeNatsJwt(user.getPublicKey(), `${name}-pipeline`, {
    type: "user",
    version: 2,
    pub: {},
    sub: {},
    subs: UNLIMITED,
    data: UNLIMITED,
    payload: UNLIMITED,
  }, account);
  return { account, accountJwt, creds: credsFileText(userJwt, user.getSeed()) };
}

/** The creds file layout `nsc` writes. */
export function credsFileText(jwt: string, seed: Uint8Array): string {
  return [
    "-----BEGIN NATS USER JWT-----",
    jwt,
    "------END NATS USER JWT------",
    "",
    "************************* IMPORTANT *************************",
    "NKEY Seed printed below can be used to sign and prove identity.",
    "NKEYs are sensitive and should be treated as secrets.",
    "",
    "-----BEGIN USER NKEY SEED-----",
    new TextDecoder().decode(seed),
    "------END USER NKEY SEED------",
    "",
  ].join("\n");
}

/** An operator, one account with JetStream and one user, all signed here. */
export async function makeOperatorSetup(): Promise<OperatorSetup> {
  const operator = nkeys.createOperator();
  const operatorJwt = await encodeNatsJwt(operator.getPublicKey(), "test-operator", {
    type: "operator",
    version: 2,
  }, operator);
  // JetStream in operator mode needs a system account.
  const system = await accountAndUser(operator, "SYS", false);
  const plant = await accountAndUser(operator, "plant");
  const foreign = await accountAndUser(nkeys.createOperator(), "foreign");
  const serverConfig = [
    `operator: ${JSON.stringify(operatorJwt)}`,
    `system_account: ${system.account.getPublicKey()}`,
    "resolver: MEMORY",
    "resolver_preload: {",
    `  ${system.account.getPublicKey()}: ${JSON.stringify(system.accountJwt)}`,
    `  ${plant.account.getPublicKey()}: ${JSON.stringify(plant.accountJwt)}`,
    "}",
  ].join("\n");
  return { serverConfig, creds: plant.creds, foreignCreds: foreign.creds };
}
