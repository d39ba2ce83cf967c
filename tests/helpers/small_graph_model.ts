/**
 * A tiny hand-written tfjs GraphModel on disk (a teacher no layer graph describes, so ONNX
 * cannot export it): shared by the path-teacher and training-engine tests.
 *
 * @module
 */

/** A hand-written GraphModel: input → Conv2D (2×2 stride 2, constant filter) → Relu. */
export async function saveSmallGraphModel(dir: string, filter: Float32Array): Promise<void> {
  const b64 = (s: string) => btoa(s);
  const list = (values: number[]) => ({ list: { i: values.map(String) } });
  const json = {
    format: "graph-model",
    modelTopology: {
      node: [
        {
          name: "images",
          op: "Placeholder",
          attr: {
            dtype: { type: "DT_FLOAT" },
            shape: {
              shape: { dim: [{ size: "-1" }, { size: "-1" }, { size: "-1" }, { size: "3" }] },
            },
          },
        },
        { name: "filter", op: "Const", attr: { dtype: { type: "DT_FLOAT" } } },
        {
          name: "conv",
          op: "Conv2D",
          input: ["images", "filter"],
          attr: {
            T: { type: "DT_FLOAT" },
            strides: list([1, 2, 2, 1]),
            padding: { s: b64("VALID") },
            data_format: { s: b64("NHWC") },
            dilations: list([1, 1, 1, 1]),
          },
        },
        { name: "relu", op: "Relu", input: ["conv"], attr: { T: { type: "DT_FLOAT" } } },
      ],
      versions: { producer: 1 },
    },
    weightsManifest: [{
      paths: ["group1-shard1of1.bin"],
      weights: [{ name: "filter", shape: [2, 2, 3, 4], dtype: "float32" }],
    }],
  };
  await Deno.writeTextFile(`${dir}/model.json`, JSON.stringify(json));
  await Deno.writeFile(`${dir}/group1-shard1of1.bin`, new Uint8Array(filter.buffer));
}
