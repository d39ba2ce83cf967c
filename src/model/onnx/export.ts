/**
 * Exports a trained {@link Detector}'s scoring graph to ONNX, built in TypeScript from its live
 * weights (no files, no Python): teacher taps → resize → concat → channel normalisation, PDN
 * student, autoencoder, the two anomaly maps, their quantile normalisation, the combined map
 * (weighted by `Detector.aeMapWeight`), image scores and the full-resolution heatmap —
 * `Detector.score` and `Detector.anomalyMaps` as one graph.
 *
 * Inputs and outputs (B is dynamic):
 *  - `images` `[B, S, S, 3]`: NHWC pixels in [0, 1], the layout of `imagesToBatch`;
 *  - `score`, `st_score`, `ae_score` `[B]`: the three numbers of a `ScoreReport`;
 *  - `map` `[B, S/4, S/4]`: the combined, normalised map;
 *  - `heatmap` `[B, S, S]`: that map at input resolution (`Detector.anomalyMaps`).
 *
 * @module
 */
import type { Detector } from "../detector.ts";
import type { Teacher } from "../teacher.ts";
import { FEATURE_STD_EPSILON, MAP_SPREAD_EPSILON } from "../../ad2/normalisation.ts";
import { pdnOutputSize } from "../pdn.ts";
import { GraphBuilder } from "./graph.ts";
import { channelConstant, channelSlice, resizeBilinear, scalar } from "./ops.ts";
import { autoencoderGraph, pdnGraph } from "./student_graph.ts";
import { teacherGraph } from "./teacher_graph.ts";

/** Names of the exported graph's input and outputs. */
export const SCORING_IO = {
  images: "images",
  score: "score",
  stScore: "st_score",
  aeScore: "ae_score",
  map: "map",
  heatmap: "heatmap",
} as const;

/** Names of the teacher-only graph's input and output. */
export const TEACHER_IO = { images: "images", features: "features" } as const;

/**
 * The detector's scoring graph as a serialised ONNX `ModelProto`.
 *
 * @throws if the detector is not fitted (no teacher statistics or map quantiles) or its teacher
 *   cannot be exported (a tfjs GraphModel teacher)
 */
export function exportDetectorOnnx(detector: Detector, label = ""): Uint8Array {
  const stats = detector.teacherStats;
  const q = detector.mapQuantiles;
  if (!stats || !q) {
    throw new Error("ONNX export: the detector is not fitted (teacher statistics, map quantiles)");
  }
  const size = detector.model.imageSize;
  const grid = pdnOutputSize(size);
  const channels = detector.teacher.channels;
  const g = new GraphBuilder();
  const images = g.input(SCORING_IO.images, ["batch", size, size, 3]);
  const x = g.node("Transpose", [images], { perm: [0, 3, 1, 2] });

  const std = Float32Array.from(stats.std.dataSync(), (s) => Math.max(s, FEATURE_STD_EPSILON));
  const target = g.node("Div", [
    g.node("Sub", [
      teacherGraph(g, detector.teacher, x, size),
      channelConstant(g, "teacher_mean", stats.mean.dataSync()),
    ]),
    channelConstant(g, "teacher_std", std),
  ]);

  const networkInput = g.node("Sub", [
    g.node("Mul", [x, scalar(g, "two", 2)]),
    scalar(g, "one", 1),
  ]);
  const student = pdnGraph(g, detector.student, networkInput, "student");
  const studentSt = channelSlice(g, student, 0, channels);
  const studentAe = channelSlice(g, student, channels, 2 * channels);
  const ae = autoencoderGraph(g, detector.autoencoder, networkInput);

  const channelMeanSquare = (a: string, b: string) => {
    const d = g.node("Sub", [a, b]);
    return g.node("ReduceMean", [g.node("Mul", [d, d]), g.ints("axes", [1])], { keepdims: 0 });
  };
  const normalise = (map: string, qa: number, qb: number) =>
    g.node("Div", [
      g.node("Mul", [g.node("Sub", [map, scalar(g, "qa", qa)]), scalar(g, "tenth", 0.1)]),
      scalar(g, "spread", Math.max(qb - qa, MAP_SPREAD_EPSILON)),
    ]);
  const st = normalise(channelMeanSquare(target, studentSt), q.stA, q.stB);
  const aeNormalised = normalise(channelMeanSquare(studentAe, ae), q.aeA, q.aeB);
  const aeWeight = detector.aeMapWeight;
  const combined = g.node("Add", [
    g.node("Mul", [st, scalar(g, "st_weight", 1 - aeWeight)]),
    g.node("Mul", [aeNormalised, scalar(g, "ae_weight", aeWeight)]),
  ]);
  const imageMax = (map: string) =>
    g.node("ReduceMax", [map, g.ints("axes", [1, 2])], { keepdims: 0 });

  g.output(imageMax(combined), SCORING_IO.score, ["batch"]);
  g.output(imageMax(st), SCORING_IO.stScore, ["batch"]);
  g.output(imageMax(aeNormalised), SCORING_IO.aeScore, ["batch"]);
  g.output(combined, SCORING_IO.map, ["batch", grid, grid]);
  const heat = resizeBilinear(
    g,
    g.node("Unsqueeze", [combined, g.ints("axes", [1])]),
    [grid, grid],
    [size, size],
  );
  g.output(
    g.node("Squeeze", [heat, g.ints("axes", [1])]),
    SCORING_IO.heatmap,
    ["batch", size, size],
  );
  return g.encode(
    "ad2_detector",
    `AD² detector ${label} (step ${detector.step}, ${size}px, teacher ${detector.teacher.name})`,
  );
}

/**
 * The frozen teacher alone as ONNX: `images` `[B, S, S, 3]` in [0, 1] → raw (unnormalised)
 * `features` `[B, S/4, S/4, C]`, i.e. `Teacher.extract`.
 */
export function exportTeacherOnnx(teacher: Teacher, imageSize: number): Uint8Array {
  const g = new GraphBuilder();
  const grid = pdnOutputSize(imageSize);
  const images = g.input(TEACHER_IO.images, ["batch", imageSize, imageSize, 3]);
  const x = g.node("Transpose", [images], { perm: [0, 3, 1, 2] });
  const features = g.node("Transpose", [teacherGraph(g, teacher, x, imageSize)], {
    perm: [0, 2, 3, 1],
  });
  g.output(features, TEACHER_IO.features, ["batch", grid, grid, teacher.channels]);
  return g.encode("ad2_teacher", `teacher ${teacher.name} at ${imageSize}px`);
}
