/**
 * Prints the scoring engine this process gets for the default inference configuration, as
 * one JSON line on stdout (tests run it with and without --allow-ffi).
 */
import { InferenceSchema, ModelSchema } from "../../src/config/schema.ts";
import { prepareScoringEngines } from "../../src/model/engine.ts";

const engines = await prepareScoringEngines(
  InferenceSchema.parse({}),
  ModelSchema.parse({}),
  (line) => console.error(line),
);
console.log(JSON.stringify({ kind: engines.kind, description: engines.description }));
