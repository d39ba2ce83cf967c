/**
 * Headless Chromium for the dashboard test and its screenshot script: Debian's
 * `/usr/bin/chromium` (installed by scripts/ensure_tools.sh) driven by puppeteer-core, which
 * downloads no browser. Offline flags and a throw-away profile directory.
 *
 * @module
 */
import puppeteer, { type Browser } from "puppeteer-core";

/** Debian's Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** A launched browser and its profile directory; disposing closes both. */
export interface HeadlessBrowser extends AsyncDisposable {
  /** The puppeteer browser. */
  readonly browser: Browser;
}

/** Flags for a headless, offline, throw-away browser. */
export function chromiumArgs(profile: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--user-data-dir=${profile}`,
  ];
}

/** Launches Chromium with a fresh profile; a clear error when it is not installed. */
export async function launchChromium(): Promise<HeadlessBrowser> {
  await Deno.stat(CHROMIUM).catch(() => {
    throw new Error(`${CHROMIUM} is missing: run scripts/ensure_tools.sh (Debian chromium)`);
  });
  const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: chromiumArgs(profile),
    });
  } catch (error) {
    await Deno.remove(profile, { recursive: true }).catch(() => undefined);
    throw error;
  }
  return {
    browser,
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(profile, { recursive: true }).catch(() => undefined);
    },
  };
}
