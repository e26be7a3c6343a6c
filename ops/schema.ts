// What an op definition says: its inputs with roles and ranks, its typed attributes with defaults and whether
// generated code specialises on them, and its shape function. The op layer imports nothing, so that any layer
// (and the WGSL runtime, which bundles it) can read it. See docs/ops.md, generated from these definitions.

/** A dimension: a size, a symbol or a product of symbols ("N*64"), or unknown. */
export type Dim = number | string | undefined;

/** Multiplication of dimensions: numbers only by default; the analysis passes its symbolic product. */
export type DimProduct = (a: Dim, b: Dim) => Dim;
export const numericProduct: DimProduct = (a, b) => (typeof a === 'number' && typeof b === 'number' ? a * b : a === 0 || b === 0 ? 0 : undefined);

export type AttrKind = 'int' | 'ints' | 'float';
export type AttrValue = number | number[];

export interface AttributeSpec {
  name: string;
  kind: AttrKind;
  /** How many values an `ints` attribute has, for spatial rank r. */
  length?: (r: number) => number;
  /** The default for spatial rank r; undefined when the attribute is required. */
  default?: (r: number) => AttrValue;
  /**
   * Generated code bakes the value in (WGSL constants, C++ template choices, the opset-11 function bodies):
   * it belongs in the specialisation key. Attributes that are not baked are run-time arguments.
   */
  specializes: boolean;
  /** A rule the value must satisfy, as a sentence for the error ("must be >= 1"), and its test. */
  check?: { test: (v: AttrValue, attrs: Readonly<Record<string, AttrValue>>) => boolean; must: string };
  doc: string;
}

export type InputRole = 'data' | 'weights' | 'expert weights' | 'routing' | 'style' | 'bias' | 'kernel' | 'epilogue';

export interface InputSpec {
  name: string;
  role: InputRole;
  /** The ranks the input may have for spatial rank r. */
  ranks: (r: number) => number[];
  /** The layout, as docs/ops.md writes it. */
  layout: string;
  /** An optional input (the epilogue's, after the op's own): given exactly when the attributes ask for it. */
  present?: (attrs: Attrs) => boolean;
}

/** Every attribute given (defaults filled in). */
export type Attrs = Readonly<Record<string, AttrValue>>;

export interface OpDefinition {
  type: string;
  summary: string;
  inputs: readonly InputSpec[];
  attributes: readonly AttributeSpec[];
  /** Checks across attributes, after each has passed its own check: a sentence naming the problem, or undefined. */
  validate?: (attrs: Attrs, rank: number) => string | undefined;
  /**
   * The output shape from the shapes of the op's own inputs (in `inputs` order, the epilogue's left out) and the attributes; a reason when the inputs
   * do not fit the op. Dims may be symbolic; `mul` multiplies them.
   */
  outputShape: (shapes: readonly (readonly Dim[])[], attrs: Attrs, mul?: DimProduct) => Dim[] | string;
}
