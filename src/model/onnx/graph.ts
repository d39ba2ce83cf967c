/**
 * A small ONNX graph builder: nodes, float initialisers and typed inputs/outputs, encoded as a
 * `ModelProto` with `npm:onnx-proto`. Values are NCHW; every helper returns the name of the
 * value it produced, so a network reads like its tfjs counterpart.
 *
 * @module
 */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";

// onnx-proto is CommonJS: its namespace is the default export's `onnx` member.
const onnx = (onnxProto as unknown as { onnx: typeof OnnxTypes }).onnx;

/** ONNX opset the exported graphs use (Resize with `axes` needs 18). */
export const ONNX_OPSET = 18;
/** ONNX IR version written into the models (the newest onnx-proto 8 knows). */
const IR_VERSION = 8;
const FLOAT = 1;
const INT64 = 7;

/** An attribute value: numbers are ints unless listed in `floats`, strings are UTF-8. */
export type AttributeValue = number | string | number[];

/** A dimension of a graph input or output: fixed, or a named (dynamic) one. */
export type Dim = number | string;

/** Builds one ONNX graph. */
export class GraphBuilder {
  readonly #nodes: OnnxTypes.INodeProto[] = [];
  readonly #initialisers = new Map<string, { dims: number[]; data: Float32Array | bigint[] }>();
  readonly #inputs: OnnxTypes.IValueInfoProto[] = [];
  readonly #outputs: OnnxTypes.IValueInfoProto[] = [];
  readonly #used = new Set<string>();
  #counter = 0;

  /** A fresh value name with `prefix`. */
  fresh(prefix: string): string {
    let name = prefix;
    while (this.#used.has(name)) name = `${prefix}_${++this.#counter}`;
    this.#used.add(name);
    return name;
  }

  /** Declares a float graph input. */
  input(name: string, dims: Dim[]): string {
    this.#used.add(name);
    this.#inputs.push(valueInfo(name, dims));
    return name;
  }

  /** Declares `value` a float graph output named `name` (an Identity when they differ). */
  output(value: string, name: string, dims: Dim[]): void {
    if (value !== name) this.node("Identity", [value], {}, name);
    this.#outputs.push(valueInfo(name, dims));
  }

  /** A float32 constant. */
  floats(prefix: string, data: Float32Array | readonly number[], dims: number[]): string {
    const size = dims.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new Error(`ONNX constant ${prefix}: ${data.length} values for shape [${dims}]`);
    }
    const name = this.fresh(prefix);
    this.#initialisers.set(name, { dims, data: Float32Array.from(data) });
    return name;
  }

  /** An int64 constant (shapes, axes, slice bounds). */
  ints(prefix: string, data: readonly number[]): string {
    const name = this.fresh(prefix);
    this.#initialisers.set(name, { dims: [data.length], data: data.map((v) => BigInt(v)) });
    return name;
  }

  /** The float data of initialiser `name` (mutable until {@link encode}), or undefined. */
  floatData(name: string): Float32Array | undefined {
    const data = this.#initialisers.get(name)?.data;
    return data instanceof Float32Array ? data : undefined;
  }

  /**
   * Adds a node. Attributes listed in `floatAttributes` are written as floats; other numbers
   * as ints. Returns the output's name (`output`, or a fresh one from the op type).
   */
  node(
    opType: string,
    inputs: string[],
    attributes: Record<string, AttributeValue> = {},
    output?: string,
    floatAttributes: readonly string[] = [],
  ): string {
    const out = output ?? this.fresh(opType.toLowerCase());
    this.#used.add(out);
    this.#nodes.push({
      opType,
      name: this.fresh(`node_${opType}`),
      input: inputs,
      output: [out],
      attribute: Object.entries(attributes).map(([name, value]) =>
        attribute(name, value, floatAttributes.includes(name))
      ),
    });
    return out;
  }

  /** The number of nodes so far (tests and logs). */
  get nodeCount(): number {
    return this.#nodes.length;
  }

  /** Encodes the graph as a serialised `ModelProto`. */
  encode(graphName: string, docString: string): Uint8Array {
    const initializer = [...this.#initialisers].map(([name, { dims, data }]) =>
      data instanceof Float32Array
        ? {
          name,
          dims,
          dataType: FLOAT,
          rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
        }
        : { name, dims, dataType: INT64, int64Data: data.map((v) => Number(v)) }
    );
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: "ad2-line",
      docString,
      opsetImport: [{ domain: "", version: ONNX_OPSET }],
      graph: {
        name: graphName,
        node: this.#nodes,
        initializer,
        input: this.#inputs,
        output: this.#outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, dims: Dim[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: {
          dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }),
        },
      },
    },
  };
}

function attribute(
  name: string,
  value: AttributeValue,
  isFloat: boolean,
): OnnxTypes.IAttributeProto {
  const type = onnx.AttributeProto.AttributeType;
  if (typeof value === "string") {
    return { name, type: type.STRING, s: new TextEncoder().encode(value) };
  }
  if (Array.isArray(value)) {
    return isFloat
      ? { name, type: type.FLOATS, floats: value }
      : { name, type: type.INTS, ints: value };
  }
  return isFloat ? { name, type: type.FLOAT, f: value } : { name, type: type.INT, i: value };
}
