/**
 * The CC0 texture photographs shipped in Debian's `python3-skimage` (brick, grass, gravel:
 * 512×512 greyscale PNGs). Only the image files are needed, not the Python stack: set-up
 * downloads the package with `apt-get download` and unpacks it with `dpkg -x` into
 * `data/skimage/` (see {@link ensureSkimageTextures}).
 *
 * @module
 */
import sharp from "sharp";
import type { GreyImage, PhotoSurface } from "./inspect_surfaces.ts";

/** Where set-up unpacks the package (relative to the working directory). */
export const SKIMAGE_DATA_DIR = "data/skimage";

/** Path of the data files inside the package. */
const PACKAGE_DATA_PATH = "usr/lib/python3/dist-packages/skimage/data";

/** Path of `surface`'s photograph once set-up ran. */
export function skimagePhotoPath(surface: PhotoSurface, dir = SKIMAGE_DATA_DIR): string {
  return `${dir}/${PACKAGE_DATA_PATH}/${surface}.png`;
}

/** Raised when the photographs are missing and cannot be fetched. */
export class TexturesMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TexturesMissingError";
  }
}

/**
 * Makes sure the photographs are under `dir`: when one is missing, downloads
 * `python3-skimage` with `apt-get download` (no install; `apt-get update` first when the
 * package lists are missing, which needs root) into a temporary folder and unpacks it into
 * `dir` with `dpkg -x`. `log` hears what is being done.
 */
export async function ensureSkimageTextures(
  dir = SKIMAGE_DATA_DIR,
  log: (line: string) => void = () => {},
): Promise<void> {
  const surfaces: PhotoSurface[] = ["brick", "grass", "gravel"];
  const present = await Promise.all(surfaces.map((s) => exists(skimagePhotoPath(s, dir))));
  if (present.every(Boolean)) return;
  log(`texture photographs missing: fetching python3-skimage into ${dir}`);
  await Deno.mkdir(dir, { recursive: true });
  const work = await Deno.makeTempDir({ prefix: "skimage-deb-" });
  try {
    try {
      await run("apt-get", ["download", "python3-skimage"], work);
    } catch (error) {
      // A fresh machine has no package lists yet: refresh them (as root) and try once more.
      log(
        `apt-get download failed (${error instanceof Error ? error.message : error}); ` +
          "running apt-get update",
      );
      await run("apt-get", ["update", "-qq"], work);
      await run("apt-get", ["download", "python3-skimage"], work);
    }
    const debs = [...Deno.readDirSync(work)].filter((e) => e.name.endsWith(".deb"));
    if (debs.length !== 1) {
      throw new TexturesMissingError(`apt-get download left ${debs.length} .deb files in ${work}`);
    }
    await run("dpkg", ["-x", `${work}/${debs[0].name}`, await Deno.realPath(dir)], work);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  for (const surface of surfaces) {
    if (!(await exists(skimagePhotoPath(surface, dir)))) {
      throw new TexturesMissingError(`python3-skimage has no ${surface}.png`);
    }
  }
}

/** Decodes `surface`'s photograph to greyscale in [0, 1]. */
export async function loadSkimagePhoto(
  surface: PhotoSurface,
  dir = SKIMAGE_DATA_DIR,
): Promise<GreyImage> {
  const path = skimagePhotoPath(surface, dir);
  if (!(await exists(path))) {
    throw new TexturesMissingError(
      `${path} is missing: run the benchmark's set-up (apt-get download python3-skimage)`,
    );
  }
  const { data, info } = await sharp(path).greyscale().raw().toBuffer({ resolveWithObject: true });
  const pixels = new Float32Array(info.width * info.height);
  for (let i = 0; i < pixels.length; i++) pixels[i] = data[i * info.channels] / 255;
  return { width: info.width, height: info.height, pixels };
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function run(command: string, args: string[], cwd: string): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, cwd, stdout: "null", stderr: "piped" })
      .output();
  } catch (error) {
    throw new TexturesMissingError(
      `cannot run ${command} (Debian's apt/dpkg are needed to fetch python3-skimage): ${error}`,
    );
  }
  if (!output.success) {
    const why = new TextDecoder().decode(output.stderr).trim();
    throw new TexturesMissingError(`${command} ${args.join(" ")} failed: ${why}`);
  }
}
