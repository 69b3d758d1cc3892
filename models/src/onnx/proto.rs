//! A small decoder of the ONNX protobuf format (`onnx.proto3`), written by
//! hand for the messages an importer needs: the model, its graph, nodes,
//! attributes, tensors and the graph's inputs and outputs.
//!
//! An `.onnx` file is data a user chose, so it is decoded like a peer's
//! message: the decoder never panics, checks every length prefix against the
//! bytes that remain before it slices or allocates anything, reads varints
//! of at most 10 bytes, requires UTF-8 strings, refuses inputs over
//! [`MAX_MODEL_BYTES`] and refuses to build a decoded model larger than
//! [`DECODED_FACTOR`] times the input plus [`DECODED_SLACK`] (so that many
//! empty messages cannot make a small file expand into a huge one). The
//! message types form a finite tree: attributes' subgraphs (`g`, `graphs`)
//! are skipped, so nesting depth is bounded without a counter. Fields it does
//! not need (doc strings, metadata, `value_info`, training info, functions,
//! sparse tensors, ...) are skipped whatever their wire type; groups (wire
//! types 3 and 4) and the invalid wire types 6 and 7 are errors. Repeated
//! scalar fields are accepted packed or not.
//!
//! Every error says which message and field was bad and at which byte offset
//! of the input ([`OnnxError::Malformed`]).
//!
//! ```
//! use pann_models::onnx::proto::{decode_model, data_type};
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/onnx/lenet5.opset13.onnx");
//! let model = decode_model(&std::fs::read(path).unwrap())?;
//! assert_eq!(model.opset_version(""), Some(13));
//! for t in &model.graph.initializers {
//!     if t.data_type == data_type::FLOAT {
//!         assert_eq!(t.to_f64()?.len(), t.element_count()?);
//!     }
//! }
//! # Ok::<(), pann_models::onnx::proto::OnnxError>(())
//! ```

use std::cell::Cell;
use std::mem::size_of;

/// Largest `.onnx` input [`decode_model`] accepts, in bytes (512 MiB).
pub const MAX_MODEL_BYTES: usize = 512 << 20;

/// The decoded model may take at most this many times the input's size in
/// memory (plus [`DECODED_SLACK`]); weights stored as `raw_data` or packed
/// floats take about once their size.
pub const DECODED_FACTOR: usize = 8;

/// Memory the decoded model may take beyond [`DECODED_FACTOR`] times the
/// input's size, in bytes (64 MiB).
pub const DECODED_SLACK: usize = 64 << 20;

/// Largest field number protobuf allows (2^29 - 1).
const MAX_FIELD: u64 = (1 << 29) - 1;

/// The element types of `TensorProto.data_type` and of a value's
/// `elem_type` (`TensorProto.DataType` in onnx.proto).
pub mod data_type {
    /// Not set.
    pub const UNDEFINED: i32 = 0;
    /// 32-bit float.
    pub const FLOAT: i32 = 1;
    /// Unsigned 8-bit integer.
    pub const UINT8: i32 = 2;
    /// Signed 8-bit integer.
    pub const INT8: i32 = 3;
    /// Unsigned 16-bit integer.
    pub const UINT16: i32 = 4;
    /// Signed 16-bit integer.
    pub const INT16: i32 = 5;
    /// Signed 32-bit integer.
    pub const INT32: i32 = 6;
    /// Signed 64-bit integer.
    pub const INT64: i32 = 7;
    /// Byte string.
    pub const STRING: i32 = 8;
    /// Boolean.
    pub const BOOL: i32 = 9;
    /// IEEE 754 half precision float.
    pub const FLOAT16: i32 = 10;
    /// 64-bit float.
    pub const DOUBLE: i32 = 11;
    /// Unsigned 32-bit integer.
    pub const UINT32: i32 = 12;
    /// Unsigned 64-bit integer.
    pub const UINT64: i32 = 13;
    /// Brain float 16.
    pub const BFLOAT16: i32 = 16;

    /// The name onnx.proto gives a data type code (`"type 99"`-like codes
    /// print as `"unknown"`).
    pub fn name(code: i32) -> &'static str {
        const NAMES: [&str; 24] = [
            "UNDEFINED",
            "FLOAT",
            "UINT8",
            "INT8",
            "UINT16",
            "INT16",
            "INT32",
            "INT64",
            "STRING",
            "BOOL",
            "FLOAT16",
            "DOUBLE",
            "UINT32",
            "UINT64",
            "COMPLEX64",
            "COMPLEX128",
            "BFLOAT16",
            "FLOAT8E4M3FN",
            "FLOAT8E4M3FNUZ",
            "FLOAT8E5M2",
            "FLOAT8E5M2FNUZ",
            "UINT4",
            "INT4",
            "FLOAT4E2M1",
        ];
        usize::try_from(code).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or("unknown")
    }
}

/// The attribute type codes of `AttributeProto.type`
/// (`AttributeProto.AttributeType` in onnx.proto).
pub mod attr_type {
    /// Not set (the type is then inferred from the value field present).
    pub const UNDEFINED: i32 = 0;
    /// One float (`f`).
    pub const FLOAT: i32 = 1;
    /// One integer (`i`).
    pub const INT: i32 = 2;
    /// One byte string (`s`).
    pub const STRING: i32 = 3;
    /// One tensor (`t`).
    pub const TENSOR: i32 = 4;
    /// One graph (`g`).
    pub const GRAPH: i32 = 5;
    /// Floats (`floats`).
    pub const FLOATS: i32 = 6;
    /// Integers (`ints`).
    pub const INTS: i32 = 7;
    /// Byte strings (`strings`).
    pub const STRINGS: i32 = 8;
    /// Tensors (`tensors`).
    pub const TENSORS: i32 = 9;
    /// Graphs (`graphs`).
    pub const GRAPHS: i32 = 10;
    /// One sparse tensor (`sparse_tensor`).
    pub const SPARSE_TENSOR: i32 = 11;
    /// Sparse tensors (`sparse_tensors`).
    pub const SPARSE_TENSORS: i32 = 12;
    /// One type (`tp`).
    pub const TYPE_PROTO: i32 = 13;
    /// Types (`type_protos`).
    pub const TYPE_PROTOS: i32 = 14;

    /// The name onnx.proto gives an attribute type code.
    pub fn name(code: i32) -> &'static str {
        const NAMES: [&str; 15] = [
            "UNDEFINED",
            "FLOAT",
            "INT",
            "STRING",
            "TENSOR",
            "GRAPH",
            "FLOATS",
            "INTS",
            "STRINGS",
            "TENSORS",
            "GRAPHS",
            "SPARSE_TENSOR",
            "SPARSE_TENSORS",
            "TYPE_PROTO",
            "TYPE_PROTOS",
        ];
        usize::try_from(code).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or("unknown")
    }
}

/// `TensorProto.data_location` of a tensor whose data lies in another file.
pub const DATA_LOCATION_EXTERNAL: i32 = 1;

/// Errors of decoding an ONNX model or reading its values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnnxError {
    /// The input is larger than [`MAX_MODEL_BYTES`].
    #[error("the ONNX model is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The input's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// The decoded model would take more memory than the input justifies
    /// ([`DECODED_FACTOR`] times its size plus [`DECODED_SLACK`]).
    #[error("malformed ONNX model: at byte {offset}, the decoded model would exceed {limit} bytes of memory (input of {input} bytes)")]
    DecodedTooLarge {
        /// Where in the input the limit was reached.
        offset: usize,
        /// The limit in bytes.
        limit: usize,
        /// The input's size in bytes.
        input: usize,
    },

    /// Bytes that are not a valid encoding of the message.
    #[error("malformed ONNX model at byte {offset}: {message}.{field} (field {number}): {reason}")]
    Malformed {
        /// The protobuf message being decoded (`"GraphProto"`, ...).
        message: &'static str,
        /// The field being decoded (`"(key)"` while reading a field's key,
        /// `"(unknown)"` for a field this decoder does not know).
        field: &'static str,
        /// The field's number (0 while reading a key).
        number: u32,
        /// Byte offset in the whole input of the bad key, length or value.
        offset: usize,
        /// What is wrong.
        reason: String,
    },

    /// A tensor whose data lies outside the `.onnx` file.
    #[error("tensor {tensor:?}: external data not supported: save the model with all tensors inside the .onnx file")]
    ExternalData {
        /// The tensor's name.
        tensor: String,
    },

    /// A tensor whose values cannot be read as asked (type, count, shape).
    #[error("tensor {tensor:?}: {reason}")]
    Tensor {
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },

    /// A node's attribute of another type than the one asked for.
    #[error("node {node:?} ({op_type}), attribute {attribute:?}: {reason}")]
    Attribute {
        /// The node's name.
        node: String,
        /// The node's operator.
        op_type: String,
        /// The attribute's name.
        attribute: String,
        /// What is wrong.
        reason: String,
    },
}

/// Results of this module.
pub type Result<T, E = OnnxError> = std::result::Result<T, E>;

/// An operator set the model imports (`OperatorSetIdProto`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsetId {
    /// The operator set's domain (`""` or `"ai.onnx"` for the default one).
    pub domain: String,
    /// Its version.
    pub version: i64,
}

/// A model (`ModelProto`): the file's top-level message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelProto {
    /// The IR version of the file format.
    pub ir_version: i64,
    /// The operator sets the graph uses.
    pub opset_imports: Vec<OpsetId>,
    /// The tool that wrote the model (`"pytorch"`).
    pub producer_name: String,
    /// That tool's version.
    pub producer_version: String,
    /// The computation.
    pub graph: GraphProto,
}

impl ModelProto {
    /// The version of the operator set `domain` the model imports; `""` and
    /// `"ai.onnx"` both name the default domain.
    pub fn opset_version(&self, domain: &str) -> Option<i64> {
        let default = |d: &str| d.is_empty() || d == "ai.onnx";
        self.opset_imports.iter().find(|o| o.domain == domain || (default(domain) && default(&o.domain))).map(|o| o.version)
    }
}

/// A graph (`GraphProto`): nodes in topological order, constant tensors and
/// the graph's inputs and outputs (`value_info` is not decoded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphProto {
    /// The graph's name.
    pub name: String,
    /// The nodes, in topological order.
    pub nodes: Vec<NodeProto>,
    /// Named constant tensors (the weights).
    pub initializers: Vec<TensorProto>,
    /// The graph's inputs (older exporters also list the initializers here).
    pub inputs: Vec<ValueInfo>,
    /// The graph's outputs.
    pub outputs: Vec<ValueInfo>,
}

impl GraphProto {
    /// The initializer called `name`.
    pub fn initializer(&self, name: &str) -> Option<&TensorProto> {
        self.initializers.iter().find(|t| t.name == name)
    }
}

/// A node (`NodeProto`): one operator application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeProto {
    /// The node's name (may be empty).
    pub name: String,
    /// The operator (`"Conv"`, `"Relu"`, ...).
    pub op_type: String,
    /// The operator's domain (`""` for the default one).
    pub domain: String,
    /// Names of the input values (`""` for an omitted optional input).
    pub inputs: Vec<String>,
    /// Names of the output values.
    pub outputs: Vec<String>,
    /// The attributes.
    pub attributes: Vec<Attribute>,
}

impl NodeProto {
    /// The attribute called `name` (the first, should there be several).
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The INT attribute `name`; `None` when absent, an error when it has
    /// another type.
    pub fn attr_int(&self, name: &str) -> Result<Option<i64>> {
        match self.attr(name).map(|a| &a.value) {
            None => Ok(None),
            Some(AttrValue::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(self.wrong_type(name, "INT", other)),
        }
    }

    /// The INTS attribute `name`; `None` when absent, an error when it has
    /// another type.
    pub fn attr_ints(&self, name: &str) -> Result<Option<&[i64]>> {
        match self.attr(name).map(|a| &a.value) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v)),
            Some(other) => Err(self.wrong_type(name, "INTS", other)),
        }
    }

    /// The FLOAT attribute `name`; `None` when absent, an error when it has
    /// another type.
    pub fn attr_float(&self, name: &str) -> Result<Option<f32>> {
        match self.attr(name).map(|a| &a.value) {
            None => Ok(None),
            Some(AttrValue::Float(v)) => Ok(Some(*v)),
            Some(other) => Err(self.wrong_type(name, "FLOAT", other)),
        }
    }

    /// The FLOATS attribute `name`; `None` when absent, an error when it has
    /// another type.
    pub fn attr_floats(&self, name: &str) -> Result<Option<&[f32]>> {
        match self.attr(name).map(|a| &a.value) {
            None => Ok(None),
            Some(AttrValue::Floats(v)) => Ok(Some(v)),
            Some(other) => Err(self.wrong_type(name, "FLOATS", other)),
        }
    }

    /// The STRING attribute `name` as UTF-8; `None` when absent, an error
    /// when it has another type or is not UTF-8.
    pub fn attr_string(&self, name: &str) -> Result<Option<&str>> {
        match self.attr(name).map(|a| &a.value) {
            None => Ok(None),
            Some(AttrValue::String(b)) => {
                std::str::from_utf8(b).map(Some).map_err(|e| self.attr_error(name, format!("STRING value is not UTF-8: {e}")))
            }
            Some(other) => Err(self.wrong_type(name, "STRING", other)),
        }
    }

    /// The TENSOR attribute `name`; `None` when absent, an error when it has
    /// another type.
    pub fn attr_tensor(&self, name: &str) -> Result<Option<&TensorProto>> {
        match self.attr(name).map(|a| &a.value) {
            None => Ok(None),
            Some(AttrValue::Tensor(t)) => Ok(Some(t)),
            Some(other) => Err(self.wrong_type(name, "TENSOR", other)),
        }
    }

    fn wrong_type(&self, name: &str, expected: &str, found: &AttrValue) -> OnnxError {
        self.attr_error(name, format!("expected type {expected}, found {}", attr_type::name(found.type_code())))
    }

    fn attr_error(&self, name: &str, reason: String) -> OnnxError {
        OnnxError::Attribute { node: self.name.clone(), op_type: self.op_type.clone(), attribute: name.to_owned(), reason }
    }
}

/// A node's attribute (`AttributeProto`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The attribute's name.
    pub name: String,
    /// Its value.
    pub value: AttrValue,
}

/// An attribute's value. Its kind is the `type` field when present and
/// otherwise the value field that was last set; graphs, strings lists,
/// tensor lists, sparse tensors and types are not decoded ([`AttrValue::Other`]).
// A node has a few attributes: the TENSOR variant's size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// FLOAT (`f`).
    Float(f32),
    /// INT (`i`).
    Int(i64),
    /// STRING (`s`): bytes, UTF-8 by convention ([`NodeProto::attr_string`] checks).
    String(Vec<u8>),
    /// TENSOR (`t`).
    Tensor(TensorProto),
    /// FLOATS (`floats`).
    Floats(Vec<f32>),
    /// INTS (`ints`).
    Ints(Vec<i64>),
    /// Any other type, by its code ([`attr_type`]); the value is not kept.
    Other(i32),
}

impl AttrValue {
    /// The attribute type code ([`attr_type`]) of this value.
    pub fn type_code(&self) -> i32 {
        match self {
            AttrValue::Float(_) => attr_type::FLOAT,
            AttrValue::Int(_) => attr_type::INT,
            AttrValue::String(_) => attr_type::STRING,
            AttrValue::Tensor(_) => attr_type::TENSOR,
            AttrValue::Floats(_) => attr_type::FLOATS,
            AttrValue::Ints(_) => attr_type::INTS,
            AttrValue::Other(code) => *code,
        }
    }
}

/// A tensor (`TensorProto`): shape, element type and values in one of the
/// typed fields or in `raw_data` (little-endian). String data, segments and
/// documentation are not decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorProto {
    /// The tensor's name (initializers are referred to by it).
    pub name: String,
    /// The shape (empty for a scalar).
    pub dims: Vec<i64>,
    /// The element type ([`data_type`]).
    pub data_type: i32,
    /// Values of FLOAT tensors (and COMPLEX64).
    pub float_data: Vec<f32>,
    /// Values of INT32, INT16, INT8, UINT16, UINT8, BOOL and FLOAT16 (bits) tensors.
    pub int32_data: Vec<i32>,
    /// Values of INT64 tensors.
    pub int64_data: Vec<i64>,
    /// Values of DOUBLE tensors (and COMPLEX128).
    pub double_data: Vec<f64>,
    /// Values of UINT32 and UINT64 tensors.
    pub uint64_data: Vec<u64>,
    /// The values as little-endian bytes, when stored so (`None` when the
    /// field is absent).
    pub raw_data: Option<Vec<u8>>,
    /// `data_location` ([`DATA_LOCATION_EXTERNAL`] for data in another file).
    pub data_location: i32,
    /// Whether `external_data` entries were present.
    pub has_external_data: bool,
}

impl TensorProto {
    /// Whether the tensor's data lies in another file (decoded models never
    /// hold such a tensor: [`decode_model`] refuses them).
    pub fn is_external(&self) -> bool {
        self.data_location == DATA_LOCATION_EXTERNAL || self.has_external_data
    }

    /// The shape as sizes (an error for a negative dimension).
    pub fn shape(&self) -> Result<Vec<usize>> {
        self.dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| self.error(format!("negative dimension in dims {:?}", self.dims))))
            .collect()
    }

    /// The number of elements: the product of `dims` (1 for a scalar), an
    /// error on a negative dimension or an overflow.
    pub fn element_count(&self) -> Result<usize> {
        self.shape()?.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| self.error(format!("dims {:?} overflow", self.dims)))
    }

    /// The values of a FLOAT (from `float_data` or `raw_data`), DOUBLE
    /// (`double_data` or `raw_data`) or FLOAT16 (`raw_data` or the bits in
    /// `int32_data`) tensor, as many as `dims` says.
    pub fn to_f64(&self) -> Result<Vec<f64>> {
        let n = self.checked_count()?;
        match self.data_type {
            data_type::FLOAT => {
                self.values(n, "float_data", &self.float_data, |b: [u8; 4]| f64::from(f32::from_le_bytes(b)), |&v| Ok(f64::from(v)))
            }
            data_type::DOUBLE => self.values(n, "double_data", &self.double_data, f64::from_le_bytes, |&v| Ok(v)),
            data_type::FLOAT16 => self.values(
                n,
                "int32_data",
                &self.int32_data,
                |b: [u8; 2]| f16_to_f64(u16::from_le_bytes(b)),
                |&v| u16::try_from(v).map(f16_to_f64).map_err(|_| self.error(format!("int32_data value {v} is not a FLOAT16 bit pattern"))),
            ),
            other => Err(self.error(format!("data type {} ({other}) is not FLOAT, DOUBLE or FLOAT16", data_type::name(other)))),
        }
    }

    /// The values of an INT64 (from `int64_data` or `raw_data`) or INT32
    /// (`int32_data` or `raw_data`) tensor, as many as `dims` says.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        let n = self.checked_count()?;
        match self.data_type {
            data_type::INT64 => self.values(n, "int64_data", &self.int64_data, i64::from_le_bytes, |&v| Ok(v)),
            data_type::INT32 => {
                self.values(n, "int32_data", &self.int32_data, |b: [u8; 4]| i64::from(i32::from_le_bytes(b)), |&v| Ok(i64::from(v)))
            }
            other => Err(self.error(format!("data type {} ({other}) is not INT64 or INT32", data_type::name(other)))),
        }
    }

    fn checked_count(&self) -> Result<usize> {
        if self.is_external() {
            return Err(OnnxError::ExternalData { tensor: self.name.clone() });
        }
        self.element_count()
    }

    /// `n` values from `raw_data` (when present and not empty: `W` bytes
    /// each) or else from the typed field `typed`.
    fn values<T, U, const W: usize>(
        &self,
        n: usize,
        field: &str,
        typed: &[T],
        from_raw: impl Fn([u8; W]) -> U,
        from_typed: impl Fn(&T) -> Result<U>,
    ) -> Result<Vec<U>> {
        match self.raw_data.as_deref().filter(|r| !r.is_empty()) {
            Some(raw) => {
                if !typed.is_empty() {
                    return Err(self.error(format!("both raw_data and {field} hold values")));
                }
                let need = n.checked_mul(W).ok_or_else(|| self.error(format!("dims {:?} overflow", self.dims)))?;
                if raw.len() != need {
                    return Err(self.error(format!(
                        "raw_data holds {} bytes, dims {:?} need {n} elements of {W} bytes ({need} bytes)",
                        raw.len(),
                        self.dims
                    )));
                }
                Ok(raw.chunks_exact(W).map(|c| from_raw(array(c))).collect())
            }
            None => {
                if typed.len() != n {
                    return Err(self.error(format!("{field} holds {} values, dims {:?} need {n}", typed.len(), self.dims)));
                }
                typed.iter().map(from_typed).collect()
            }
        }
    }

    fn error(&self, reason: String) -> OnnxError {
        OnnxError::Tensor { tensor: self.name.clone(), reason }
    }
}

/// The first `W` bytes of `c` (zero-padded; callers pass exactly `W`).
fn array<const W: usize>(c: &[u8]) -> [u8; W] {
    let mut a = [0u8; W];
    for (d, s) in a.iter_mut().zip(c) {
        *d = *s;
    }
    a
}

/// An IEEE 754 half-precision bit pattern as f64 (exact).
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    match exp {
        0 => sign * mant * 2f64.powi(-24),
        31 if mant == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A graph input or output (`ValueInfoProto` with a tensor type).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueInfo {
    /// The value's name.
    pub name: String,
    /// The element type ([`data_type`]; 0 when the type is not a tensor type
    /// or is absent).
    pub elem_type: i32,
    /// The shape (empty when absent).
    pub dims: Vec<Dim>,
}

/// One dimension of a [`ValueInfo`]'s shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size (`dim_value`).
    Value(i64),
    /// A named symbolic size (`dim_param`, such as a batch dimension).
    Param(String),
    /// Neither.
    Unknown,
}

/// Decode an `.onnx` file's bytes. See the module documentation for what is
/// checked; tensors with external data are refused ([`OnnxError::ExternalData`]).
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto> {
    decode_with(bytes, MAX_MODEL_BYTES, DECODED_SLACK)
}

fn decode_with(bytes: &[u8], max_input: usize, slack: usize) -> Result<ModelProto> {
    if bytes.len() > max_input {
        return Err(OnnxError::TooLarge { size: bytes.len(), limit: max_input });
    }
    let limit = bytes.len().saturating_mul(DECODED_FACTOR).saturating_add(slack);
    let budget = Budget { left: Cell::new(limit), limit, input: bytes.len() };
    model(&mut Reader::new(bytes, 0, &MODEL, &budget))
}

// ---------------------------------------------------------------------------
// Messages and their fields (names for error messages).

struct Msg {
    name: &'static str,
    fields: &'static [(u32, &'static str)],
}

static MODEL: Msg = Msg {
    name: "ModelProto",
    fields: &[
        (1, "ir_version"),
        (2, "producer_name"),
        (3, "producer_version"),
        (4, "domain"),
        (5, "model_version"),
        (6, "doc_string"),
        (7, "graph"),
        (8, "opset_import"),
        (14, "metadata_props"),
        (20, "training_info"),
        (25, "functions"),
    ],
};
static OPSET: Msg = Msg { name: "OperatorSetIdProto", fields: &[(1, "domain"), (2, "version")] };
static GRAPH: Msg = Msg {
    name: "GraphProto",
    fields: &[
        (1, "node"),
        (2, "name"),
        (5, "initializer"),
        (10, "doc_string"),
        (11, "input"),
        (12, "output"),
        (13, "value_info"),
        (14, "quantization_annotation"),
        (15, "sparse_initializer"),
    ],
};
static NODE: Msg = Msg {
    name: "NodeProto",
    fields: &[
        (1, "input"),
        (2, "output"),
        (3, "name"),
        (4, "op_type"),
        (5, "attribute"),
        (6, "doc_string"),
        (7, "domain"),
        (8, "overload"),
        (9, "metadata_props"),
    ],
};
static ATTRIBUTE: Msg = Msg {
    name: "AttributeProto",
    fields: &[
        (1, "name"),
        (2, "f"),
        (3, "i"),
        (4, "s"),
        (5, "t"),
        (6, "g"),
        (7, "floats"),
        (8, "ints"),
        (9, "strings"),
        (10, "tensors"),
        (11, "graphs"),
        (13, "doc_string"),
        (14, "tp"),
        (15, "type_protos"),
        (20, "type"),
        (21, "ref_attr_name"),
        (22, "sparse_tensor"),
        (23, "sparse_tensors"),
    ],
};
static TENSOR: Msg = Msg {
    name: "TensorProto",
    fields: &[
        (1, "dims"),
        (2, "data_type"),
        (3, "segment"),
        (4, "float_data"),
        (5, "int32_data"),
        (6, "string_data"),
        (7, "int64_data"),
        (8, "name"),
        (9, "raw_data"),
        (10, "double_data"),
        (11, "uint64_data"),
        (12, "doc_string"),
        (13, "external_data"),
        (14, "data_location"),
    ],
};
static VALUE_INFO: Msg = Msg { name: "ValueInfoProto", fields: &[(1, "name"), (2, "type"), (3, "doc_string")] };
static TYPE: Msg = Msg { name: "TypeProto", fields: &[(1, "tensor_type"), (6, "denotation")] };
static TENSOR_TYPE: Msg = Msg { name: "TypeProto.Tensor", fields: &[(1, "elem_type"), (2, "shape")] };
static SHAPE: Msg = Msg { name: "TensorShapeProto", fields: &[(1, "dim")] };
static DIMENSION: Msg = Msg { name: "TensorShapeProto.Dimension", fields: &[(1, "dim_value"), (2, "dim_param"), (3, "denotation")] };

// ---------------------------------------------------------------------------
// The wire format.

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Memory the decoded model may still take.
struct Budget {
    left: Cell<usize>,
    limit: usize,
    input: usize,
}

/// A cursor over one message's bytes; `base` is the offset of `buf` in the
/// whole input, so errors give absolute offsets. Invariant: `pos <= buf.len()`.
struct Reader<'a, 'b> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    msg: &'static Msg,
    budget: &'b Budget,
    /// The current field's number and wire type (after [`Reader::next`]).
    number: u32,
    wire: u8,
}

impl<'a, 'b> Reader<'a, 'b> {
    fn new(buf: &'a [u8], base: usize, msg: &'static Msg, budget: &'b Budget) -> Self {
        Reader { buf, pos: 0, base, msg, budget, number: 0, wire: 0 }
    }

    fn field_name(&self) -> &'static str {
        if self.number == 0 {
            return "(key)";
        }
        self.msg.fields.iter().find(|(n, _)| *n == self.number).map(|(_, name)| *name).unwrap_or("(unknown)")
    }

    /// An error at `at` (an offset in `buf`) in the current field.
    fn fail_at(&self, at: usize, reason: impl Into<String>) -> OnnxError {
        OnnxError::Malformed {
            message: self.msg.name,
            field: self.field_name(),
            number: self.number,
            offset: self.base.saturating_add(at),
            reason: reason.into(),
        }
    }

    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Take `n` bytes of the decoded model's memory budget.
    fn charge(&self, n: usize) -> Result<()> {
        let left = self.budget.left.get();
        if n > left {
            return Err(OnnxError::DecodedTooLarge {
                offset: self.base.saturating_add(self.pos),
                limit: self.budget.limit,
                input: self.budget.input,
            });
        }
        self.budget.left.set(left - n);
        Ok(())
    }

    /// The next field's number (and sets the wire type); `None` at the end.
    fn next(&mut self) -> Result<Option<u32>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.pos;
        self.number = 0;
        let key = self.raw_varint()?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD {
            return Err(self.fail_at(at, format!("field number {number} is out of range")));
        }
        // Lossless: number <= 2^29 - 1.
        self.number = number as u32;
        self.wire = (key & 7) as u8;
        match self.wire {
            VARINT | FIXED64 | LEN | FIXED32 => Ok(Some(self.number)),
            3 | 4 => Err(self.fail_at(at, format!("wire type {} (groups) is not supported", self.wire))),
            w => Err(self.fail_at(at, format!("invalid wire type {w}"))),
        }
    }

    fn raw_varint(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.fail_at(start, "truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.fail_at(start, "varint longer than 10 bytes or above 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.fail_at(start, "varint longer than 10 bytes"))
    }

    fn raw_fixed<const W: usize>(&mut self) -> Result<[u8; W]> {
        let start = self.pos;
        match start.checked_add(W).and_then(|end| self.buf.get(start..end)) {
            Some(b) => {
                self.pos = start + W;
                Ok(array(b))
            }
            None => Err(self.fail_at(start, format!("truncated {W}-byte value ({} bytes left)", self.left()))),
        }
    }

    /// A length-delimited value and its absolute offset.
    fn raw_len(&mut self) -> Result<(&'a [u8], usize)> {
        let start = self.pos;
        let len = self.raw_varint()?;
        let left = self.left();
        if len > left as u64 {
            return Err(self.fail_at(start, format!("length {len} runs past the end of the enclosing message ({left} bytes left)")));
        }
        // Lossless: len <= left.
        let len = len as usize;
        let from = self.pos;
        match from.checked_add(len).and_then(|end| self.buf.get(from..end)) {
            Some(data) => {
                self.pos = from + len;
                Ok((data, self.base.saturating_add(from)))
            }
            None => Err(self.fail_at(start, "length runs past the end of the enclosing message")),
        }
    }

    fn expect(&self, wire: u8, what: &str) -> Result<()> {
        if self.wire == wire {
            Ok(())
        } else {
            Err(self.fail_at(self.pos, format!("wire type {} where {what} (wire type {wire}) was expected", self.wire)))
        }
    }

    fn skip(&mut self) -> Result<()> {
        match self.wire {
            VARINT => self.raw_varint().map(drop),
            FIXED64 => self.raw_fixed::<8>().map(drop),
            LEN => self.raw_len().map(drop),
            FIXED32 => self.raw_fixed::<4>().map(drop),
            w => Err(self.fail_at(self.pos, format!("invalid wire type {w}"))),
        }
    }

    fn int64(&mut self) -> Result<i64> {
        self.expect(VARINT, "a varint")?;
        // Two's complement, as protobuf encodes negative int64.
        Ok(self.raw_varint()? as i64)
    }

    fn int32(&mut self) -> Result<i32> {
        self.expect(VARINT, "a varint")?;
        // Protobuf keeps the low 32 bits of an int32 varint.
        Ok(self.raw_varint()? as i32)
    }

    fn float(&mut self) -> Result<f32> {
        self.expect(FIXED32, "a float")?;
        Ok(f32::from_le_bytes(self.raw_fixed()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        self.expect(LEN, "a length-delimited value")?;
        Ok(self.raw_len()?.0)
    }

    fn owned_bytes(&mut self) -> Result<Vec<u8>> {
        let b = self.bytes()?;
        self.charge(b.len().saturating_add(size_of::<Vec<u8>>()))?;
        Ok(b.to_vec())
    }

    fn string(&mut self) -> Result<String> {
        let start = self.pos;
        let b = self.bytes()?;
        let s = std::str::from_utf8(b).map_err(|e| self.fail_at(start, format!("string is not UTF-8: {e}")))?;
        self.charge(s.len().saturating_add(size_of::<String>()))?;
        Ok(s.to_owned())
    }

    /// A reader over the embedded message of the current field.
    fn message(&mut self, msg: &'static Msg) -> Result<Reader<'a, 'b>> {
        self.expect(LEN, "an embedded message")?;
        let (data, base) = self.raw_len()?;
        Ok(Reader::new(data, base, msg, self.budget))
    }

    /// A reader over a packed field's bytes, in the current field's context.
    fn packed(&mut self) -> Result<Reader<'a, 'b>> {
        let (data, base) = self.raw_len()?;
        Ok(Reader { buf: data, pos: 0, base, msg: self.msg, budget: self.budget, number: self.number, wire: self.wire })
    }

    /// One value of a repeated varint field, or a packed run of them.
    fn repeated_varint<T>(&mut self, out: &mut Vec<T>, conv: impl Fn(u64) -> T) -> Result<()> {
        match self.wire {
            VARINT => {
                self.charge(size_of::<T>())?;
                out.push(conv(self.raw_varint()?));
            }
            LEN => {
                let mut p = self.packed()?;
                while p.left() > 0 {
                    p.charge(size_of::<T>())?;
                    out.push(conv(p.raw_varint()?));
                }
            }
            w => return Err(self.fail_at(self.pos, format!("wire type {w} where varints (0) or packed varints (2) were expected"))),
        }
        Ok(())
    }

    /// One value of a repeated fixed-width field (wire type `wire`), or a
    /// packed run of them.
    fn repeated_fixed<T, const W: usize>(&mut self, wire: u8, out: &mut Vec<T>, conv: impl Fn([u8; W]) -> T) -> Result<()> {
        if self.wire == wire {
            self.charge(size_of::<T>())?;
            out.push(conv(self.raw_fixed()?));
        } else if self.wire == LEN {
            let p = self.packed()?;
            if p.buf.len() % W != 0 {
                return Err(p.fail_at(0, format!("packed {W}-byte values take {} bytes, not a multiple of {W}", p.buf.len())));
            }
            let count = p.buf.len() / W;
            p.charge(count.saturating_mul(size_of::<T>()))?;
            out.reserve(count);
            out.extend(p.buf.chunks_exact(W).map(|c| conv(array(c))));
        } else {
            return Err(
                self.fail_at(self.pos, format!("wire type {} where wire type {wire} or packed values (2) were expected", self.wire))
            );
        }
        Ok(())
    }

    /// Decode an embedded message with `decode` and push it onto `out`.
    fn repeated_message<T>(&mut self, msg: &'static Msg, out: &mut Vec<T>, decode: fn(&mut Reader<'a, 'b>) -> Result<T>) -> Result<()> {
        self.charge(size_of::<T>())?;
        let mut sub = self.message(msg)?;
        out.push(decode(&mut sub)?);
        Ok(())
    }

    /// The error of a required field missing from this message.
    fn missing(&mut self, number: u32, what: &str) -> OnnxError {
        self.number = number;
        self.fail_at(self.buf.len(), format!("{what} is missing"))
    }
}

// ---------------------------------------------------------------------------
// The messages.

fn model(r: &mut Reader) -> Result<ModelProto> {
    let mut m = ModelProto::default();
    let mut graph = None;
    while let Some(number) = r.next()? {
        match number {
            1 => m.ir_version = r.int64()?,
            2 => m.producer_name = r.string()?,
            3 => m.producer_version = r.string()?,
            7 => {
                if graph.is_some() {
                    return Err(r.fail_at(r.pos, "the graph appears twice"));
                }
                graph = Some(graph_proto(&mut r.message(&GRAPH)?)?);
            }
            8 => r.repeated_message(&OPSET, &mut m.opset_imports, opset)?,
            _ => r.skip()?,
        }
    }
    m.graph = graph.ok_or_else(|| r.missing(7, "the graph"))?;
    Ok(m)
}

fn opset(r: &mut Reader) -> Result<OpsetId> {
    let mut o = OpsetId::default();
    while let Some(number) = r.next()? {
        match number {
            1 => o.domain = r.string()?,
            2 => o.version = r.int64()?,
            _ => r.skip()?,
        }
    }
    Ok(o)
}

fn graph_proto(r: &mut Reader) -> Result<GraphProto> {
    let mut g = GraphProto::default();
    while let Some(number) = r.next()? {
        match number {
            1 => r.repeated_message(&NODE, &mut g.nodes, node)?,
            2 => g.name = r.string()?,
            5 => r.repeated_message(&TENSOR, &mut g.initializers, tensor)?,
            11 => r.repeated_message(&VALUE_INFO, &mut g.inputs, value_info)?,
            12 => r.repeated_message(&VALUE_INFO, &mut g.outputs, value_info)?,
            _ => r.skip()?,
        }
    }
    Ok(g)
}

fn node(r: &mut Reader) -> Result<NodeProto> {
    let mut n = NodeProto::default();
    while let Some(number) = r.next()? {
        match number {
            1 => n.inputs.push(r.string()?),
            2 => n.outputs.push(r.string()?),
            3 => n.name = r.string()?,
            4 => n.op_type = r.string()?,
            5 => r.repeated_message(&ATTRIBUTE, &mut n.attributes, attribute)?,
            7 => n.domain = r.string()?,
            _ => r.skip()?,
        }
    }
    Ok(n)
}

fn attribute(r: &mut Reader) -> Result<Attribute> {
    let mut name = String::new();
    let mut declared = attr_type::UNDEFINED;
    let mut seen = attr_type::UNDEFINED;
    let (mut f, mut i, mut s, mut t) = (0f32, 0i64, Vec::new(), None);
    let (mut floats, mut ints) = (Vec::new(), Vec::new());
    while let Some(number) = r.next()? {
        match number {
            1 => name = r.string()?,
            20 => declared = r.int32()?,
            2 => (f, seen) = (r.float()?, attr_type::FLOAT),
            3 => (i, seen) = (r.int64()?, attr_type::INT),
            4 => (s, seen) = (r.owned_bytes()?, attr_type::STRING),
            5 => (t, seen) = (Some(tensor(&mut r.message(&TENSOR)?)?), attr_type::TENSOR),
            7 => {
                r.repeated_fixed(FIXED32, &mut floats, f32::from_le_bytes)?;
                seen = attr_type::FLOATS;
            }
            8 => {
                r.repeated_varint(&mut ints, |v| v as i64)?;
                seen = attr_type::INTS;
            }
            // Kept only as the type: subgraphs (no recursion), lists of
            // strings, tensors or graphs, sparse tensors, types.
            6 | 9 | 10 | 11 | 14 | 15 | 22 | 23 => {
                r.skip()?;
                seen = match number {
                    6 => attr_type::GRAPH,
                    9 => attr_type::STRINGS,
                    10 => attr_type::TENSORS,
                    11 => attr_type::GRAPHS,
                    14 => attr_type::TYPE_PROTO,
                    15 => attr_type::TYPE_PROTOS,
                    22 => attr_type::SPARSE_TENSOR,
                    _ => attr_type::SPARSE_TENSORS,
                };
            }
            _ => r.skip()?,
        }
    }
    let kind = if declared != attr_type::UNDEFINED { declared } else { seen };
    let value = match kind {
        attr_type::FLOAT => AttrValue::Float(f),
        attr_type::INT => AttrValue::Int(i),
        attr_type::STRING => AttrValue::String(s),
        attr_type::TENSOR => AttrValue::Tensor(t.ok_or_else(|| r.missing(5, "the TENSOR attribute's value t"))?),
        attr_type::FLOATS => AttrValue::Floats(floats),
        attr_type::INTS => AttrValue::Ints(ints),
        other => AttrValue::Other(other),
    };
    Ok(Attribute { name, value })
}

fn tensor(r: &mut Reader) -> Result<TensorProto> {
    let mut t = TensorProto::default();
    while let Some(number) = r.next()? {
        match number {
            1 => r.repeated_varint(&mut t.dims, |v| v as i64)?,
            2 => t.data_type = r.int32()?,
            4 => r.repeated_fixed(FIXED32, &mut t.float_data, f32::from_le_bytes)?,
            5 => r.repeated_varint(&mut t.int32_data, |v| v as i32)?,
            7 => r.repeated_varint(&mut t.int64_data, |v| v as i64)?,
            8 => t.name = r.string()?,
            9 => t.raw_data = Some(r.owned_bytes()?),
            10 => r.repeated_fixed(FIXED64, &mut t.double_data, f64::from_le_bytes)?,
            11 => r.repeated_varint(&mut t.uint64_data, |v| v)?,
            13 => {
                r.skip()?;
                t.has_external_data = true;
            }
            14 => t.data_location = r.int32()?,
            _ => r.skip()?,
        }
    }
    if t.is_external() {
        return Err(OnnxError::ExternalData { tensor: t.name });
    }
    Ok(t)
}

fn value_info(r: &mut Reader) -> Result<ValueInfo> {
    let mut v = ValueInfo::default();
    while let Some(number) = r.next()? {
        match number {
            1 => v.name = r.string()?,
            2 => (v.elem_type, v.dims) = type_proto(&mut r.message(&TYPE)?)?,
            _ => r.skip()?,
        }
    }
    Ok(v)
}

/// A `TypeProto`: the tensor type's element type and shape (0 and no dims
/// for other types).
fn type_proto(r: &mut Reader) -> Result<(i32, Vec<Dim>)> {
    let mut out = (data_type::UNDEFINED, Vec::new());
    while let Some(number) = r.next()? {
        match number {
            1 => out = tensor_type(&mut r.message(&TENSOR_TYPE)?)?,
            _ => r.skip()?,
        }
    }
    Ok(out)
}

fn tensor_type(r: &mut Reader) -> Result<(i32, Vec<Dim>)> {
    let (mut elem_type, mut dims) = (data_type::UNDEFINED, Vec::new());
    while let Some(number) = r.next()? {
        match number {
            1 => elem_type = r.int32()?,
            2 => {
                let mut shape = r.message(&SHAPE)?;
                dims.clear();
                while let Some(number) = shape.next()? {
                    match number {
                        1 => shape.repeated_message(&DIMENSION, &mut dims, dimension)?,
                        _ => shape.skip()?,
                    }
                }
            }
            _ => r.skip()?,
        }
    }
    Ok((elem_type, dims))
}

fn dimension(r: &mut Reader) -> Result<Dim> {
    let mut d = Dim::Unknown;
    while let Some(number) = r.next()? {
        match number {
            1 => d = Dim::Value(r.int64()?),
            2 => d = Dim::Param(r.string()?),
            _ => r.skip()?,
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A tiny protobuf writer.

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, u64::from(field) << 3 | u64::from(wire));
    }

    fn int(out: &mut Vec<u8>, field: u32, v: i64) {
        key(out, field, VARINT);
        varint(out, v as u64);
    }

    fn len(out: &mut Vec<u8>, field: u32, data: &[u8]) {
        key(out, field, LEN);
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }

    fn fixed32(out: &mut Vec<u8>, field: u32, b: [u8; 4]) {
        key(out, field, FIXED32);
        out.extend_from_slice(&b);
    }

    fn fixed64(out: &mut Vec<u8>, field: u32, b: [u8; 8]) {
        key(out, field, FIXED64);
        out.extend_from_slice(&b);
    }

    fn msg(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        build(&mut out);
        out
    }

    fn packed_varints(vals: &[i64]) -> Vec<u8> {
        msg(|o| vals.iter().for_each(|&v| varint(o, v as u64)))
    }

    fn packed_f32(vals: &[f32]) -> Vec<u8> {
        vals.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// An unknown field of every wire type (numbers no message uses).
    fn unknowns(o: &mut Vec<u8>) {
        int(o, 1000, -1);
        fixed64(o, 1001, 1.5f64.to_le_bytes());
        len(o, 1002, b"skip me");
        fixed32(o, 1003, [1, 2, 3, 4]);
    }

    fn model_with_graph(graph: &[u8]) -> Vec<u8> {
        msg(|o| {
            int(o, 1, 8);
            len(o, 7, graph);
        })
    }

    fn decode_tensor(t: &[u8]) -> Result<TensorProto> {
        let g = decode_model(&model_with_graph(&msg(|o| len(o, 5, t))))?;
        Ok(g.graph.initializers.into_iter().next().expect("one initializer"))
    }

    fn reason(e: &OnnxError) -> String {
        e.to_string()
    }

    /// The hand-encoded model: every attribute kind, packed and unpacked
    /// repeated fields, raw and typed tensor data, unknown fields of every
    /// wire type in every message, symbolic dimensions. The graph is the
    /// last top-level field, so every proper prefix lacks it or cuts it.
    fn sample() -> Vec<u8> {
        let tensors = vec![
            // FLOAT, unpacked dims, raw_data.
            msg(|o| {
                unknowns(o);
                int(o, 1, 2);
                int(o, 1, 3);
                int(o, 2, 1);
                len(o, 8, b"w");
                len(o, 9, &packed_f32(&[1.0, -2.0, 0.25, 3.5, -0.5, 1e-3]));
                len(o, 12, b"doc");
            }),
            // FLOAT, packed dims, packed float_data.
            msg(|o| {
                len(o, 1, &packed_varints(&[3]));
                int(o, 2, 1);
                len(o, 4, &packed_f32(&[0.5, -1.5, 2.0]));
                len(o, 8, b"b");
            }),
            // FLOAT, unpacked float_data.
            msg(|o| {
                int(o, 1, 2);
                int(o, 2, 1);
                fixed32(o, 4, 7.0f32.to_le_bytes());
                fixed32(o, 4, (-8.0f32).to_le_bytes());
                len(o, 8, b"fu");
            }),
            // INT64, unpacked int64_data (a negative one: 10 bytes).
            msg(|o| {
                int(o, 1, 2);
                int(o, 2, 7);
                int(o, 7, -1);
                int(o, 7, 1024);
                len(o, 8, b"shape");
            }),
            // INT64 raw_data.
            msg(|o| {
                int(o, 1, 2);
                int(o, 2, 7);
                len(o, 9, &[5i64.to_le_bytes(), (-6i64).to_le_bytes()].concat());
                len(o, 8, b"i64raw");
            }),
            // INT32 scalar, raw_data.
            msg(|o| {
                int(o, 2, 6);
                len(o, 9, &(-7i32).to_le_bytes());
                len(o, 8, b"i32raw");
            }),
            // INT32, packed int32_data (negative values sign-extended).
            msg(|o| {
                int(o, 1, 3);
                int(o, 2, 6);
                len(o, 5, &packed_varints(&[1, -2, 3]));
                len(o, 8, b"i32");
            }),
            // DOUBLE, packed double_data, and one unpacked.
            msg(|o| {
                int(o, 1, 3);
                int(o, 2, 11);
                len(o, 10, &[0.1f64.to_le_bytes(), (-2.5f64).to_le_bytes()].concat());
                fixed64(o, 10, 1e300f64.to_le_bytes());
                len(o, 8, b"d");
            }),
            // FLOAT16 raw_data: 1.0, -2.0, the smallest subnormal.
            msg(|o| {
                int(o, 1, 3);
                int(o, 2, 10);
                len(o, 9, &[0x3c00u16, 0xc000, 0x0001].iter().flat_map(|h| h.to_le_bytes()).collect::<Vec<u8>>());
                len(o, 8, b"h");
            }),
            // FLOAT16 bits in int32_data: 0.5.
            msg(|o| {
                int(o, 1, 1);
                int(o, 2, 10);
                int(o, 5, 0x3800);
                len(o, 8, b"h32");
            }),
            // Zero elements.
            msg(|o| {
                int(o, 1, 0);
                int(o, 1, 4);
                int(o, 2, 1);
                len(o, 8, b"empty");
            }),
        ];
        let attr = |name: &str, body: &dyn Fn(&mut Vec<u8>)| {
            msg(|o| {
                len(o, 1, name.as_bytes());
                unknowns(o);
                body(o);
                len(o, 13, b"doc");
            })
        };
        let attrs = vec![
            attr("alpha", &|o| {
                fixed32(o, 2, 0.5f32.to_le_bytes());
                int(o, 20, 1);
            }),
            attr("group", &|o| int(o, 3, -2)),
            attr("mode", &|o| {
                len(o, 4, b"constant");
                int(o, 20, 3);
            }),
            attr("value", &|o| {
                len(
                    o,
                    5,
                    &msg(|t| {
                        int(t, 1, 1);
                        int(t, 2, 1);
                        len(t, 4, &packed_f32(&[4.0]));
                    }),
                );
                int(o, 20, 4);
            }),
            attr("scales", &|o| {
                fixed32(o, 7, 1.0f32.to_le_bytes());
                fixed32(o, 7, 2.5f32.to_le_bytes());
                int(o, 20, 6);
            }),
            attr("pads", &|o| {
                len(o, 8, &packed_varints(&[0, 1, 1, 0]));
                int(o, 20, 7);
            }),
            attr("kernel_shape", &|o| {
                int(o, 8, 3);
                int(o, 8, 3);
            }),
            attr("body", &|o| {
                len(o, 6, &msg(|g| len(g, 2, b"subgraph")));
                int(o, 20, 5);
            }),
            attr("names", &|o| {
                len(o, 9, b"a");
                len(o, 9, b"b");
            }),
            attr("zero", &|o| int(o, 20, 2)),
            attr("no_floats", &|o| int(o, 20, 6)),
            attr("latin1", &|o| {
                len(o, 4, &[0xe9]);
                int(o, 20, 3);
            }),
            attr("ref", &|o| {
                len(o, 21, b"outer");
                int(o, 20, 2);
            }),
        ];
        let conv = msg(|o| {
            unknowns(o);
            len(o, 1, b"x");
            len(o, 1, b"w");
            len(o, 1, b"");
            len(o, 2, b"y");
            len(o, 3, b"conv0");
            len(o, 4, b"Conv");
            len(o, 6, b"doc");
            for a in &attrs {
                len(o, 5, a);
            }
            len(o, 9, &msg(|m| len(m, 1, b"key")));
        });
        let relu = msg(|o| {
            len(o, 4, b"Relu");
            len(o, 1, b"y");
            len(o, 2, b"z");
            len(o, 7, b"ai.onnx");
            len(o, 8, b"overload");
        });
        let shape = msg(|s| {
            unknowns(s);
            len(s, 1, &msg(|d| len(d, 2, b"N")));
            len(s, 1, &msg(|d| int(d, 1, 3)));
            len(s, 1, &msg(|d| len(d, 3, b"denotation")));
            len(s, 1, &msg(|d| int(d, 1, 32)));
        });
        let input = msg(|o| {
            len(o, 1, b"x");
            len(
                o,
                2,
                &msg(|t| {
                    unknowns(t);
                    len(
                        t,
                        1,
                        &msg(|tt| {
                            unknowns(tt);
                            int(tt, 1, 1);
                            len(tt, 2, &shape);
                        }),
                    );
                }),
            );
            len(o, 3, b"doc");
        });
        // A sequence type: no tensor type, so elem_type 0 and no dims.
        let seq_input = msg(|o| {
            len(o, 1, b"seq");
            len(o, 2, &msg(|t| len(t, 4, &msg(|e| int(e, 1, 1)))));
        });
        let output = msg(|o| {
            unknowns(o);
            len(o, 1, b"z");
            len(o, 2, &msg(|t| len(t, 1, &msg(|tt| int(tt, 1, 1)))));
        });
        let graph = msg(|o| {
            unknowns(o);
            len(o, 2, b"g");
            len(o, 1, &conv);
            len(o, 1, &relu);
            for t in &tensors {
                len(o, 5, t);
            }
            len(o, 10, b"graph doc");
            len(o, 11, &input);
            len(o, 11, &seq_input);
            len(o, 12, &output);
            len(o, 13, &output);
            len(o, 15, b"\x0a\x00");
        });
        msg(|o| {
            unknowns(o);
            int(o, 1, 8);
            len(o, 2, b"pytorch");
            len(o, 3, b"2.13.0");
            len(o, 4, b"domain");
            int(o, 5, 1);
            len(o, 6, "doc \u{e9}".as_bytes());
            len(o, 8, &msg(|s| int(s, 2, 13)));
            len(
                o,
                8,
                &msg(|s| {
                    unknowns(s);
                    len(s, 1, b"com.microsoft");
                    int(s, 2, 1);
                }),
            );
            len(o, 14, &msg(|m| len(m, 1, b"k")));
            len(o, 7, &graph);
        })
    }

    #[test]
    fn onnx_sample_round_trips() {
        let m = decode_model(&sample()).unwrap();
        assert_eq!(m.ir_version, 8);
        assert_eq!((m.producer_name.as_str(), m.producer_version.as_str()), ("pytorch", "2.13.0"));
        assert_eq!(
            m.opset_imports,
            vec![OpsetId { domain: String::new(), version: 13 }, OpsetId { domain: "com.microsoft".into(), version: 1 }]
        );
        assert_eq!(m.opset_version(""), Some(13));
        assert_eq!(m.opset_version("ai.onnx"), Some(13));
        assert_eq!(m.opset_version("com.microsoft"), Some(1));
        assert_eq!(m.opset_version("other"), None);

        let g = &m.graph;
        assert_eq!(g.name, "g");
        assert_eq!(g.nodes.len(), 2);
        let conv = &g.nodes[0];
        assert_eq!((conv.name.as_str(), conv.op_type.as_str(), conv.domain.as_str()), ("conv0", "Conv", ""));
        assert_eq!(conv.inputs, ["x", "w", ""]);
        assert_eq!(conv.outputs, ["y"]);
        assert_eq!(conv.attributes.len(), 13);
        assert_eq!(conv.attr_float("alpha").unwrap(), Some(0.5));
        assert_eq!(conv.attr_int("group").unwrap(), Some(-2));
        assert_eq!(conv.attr_string("mode").unwrap(), Some("constant"));
        let value = conv.attr_tensor("value").unwrap().unwrap();
        assert_eq!((value.dims.as_slice(), value.to_f64().unwrap()), (&[1i64][..], vec![4.0]));
        assert_eq!(conv.attr_floats("scales").unwrap(), Some(&[1.0f32, 2.5][..]));
        assert_eq!(conv.attr_ints("pads").unwrap(), Some(&[0i64, 1, 1, 0][..]));
        assert_eq!(conv.attr_ints("kernel_shape").unwrap(), Some(&[3i64, 3][..]));
        assert_eq!(conv.attr("body").unwrap().value, AttrValue::Other(attr_type::GRAPH));
        assert_eq!(conv.attr("names").unwrap().value, AttrValue::Other(attr_type::STRINGS));
        assert_eq!(conv.attr_int("zero").unwrap(), Some(0));
        assert_eq!(conv.attr_floats("no_floats").unwrap(), Some(&[][..]));
        assert_eq!(conv.attr("latin1").unwrap().value, AttrValue::String(vec![0xe9]));
        let e = conv.attr_string("latin1").unwrap_err();
        assert!(matches!(&e, OnnxError::Attribute { attribute, .. } if attribute == "latin1"), "{e}");
        assert_eq!(conv.attr_int("ref").unwrap(), Some(0));
        // Absent and mistyped attributes.
        assert_eq!(conv.attr_int("missing").unwrap(), None);
        assert!(conv.attr("missing").is_none());
        let e = conv.attr_ints("group").unwrap_err();
        assert_eq!(reason(&e), "node \"conv0\" (Conv), attribute \"group\": expected type INTS, found INT");
        assert!(conv.attr_float("mode").is_err());
        assert!(conv.attr_tensor("alpha").is_err());
        assert!(conv.attr_string("value").is_err());

        let relu = &g.nodes[1];
        assert_eq!((relu.op_type.as_str(), relu.domain.as_str(), relu.name.as_str()), ("Relu", "ai.onnx", ""));
        assert_eq!((relu.inputs.as_slice(), relu.outputs.as_slice()), (&["y".to_string()][..], &["z".to_string()][..]));
        assert!(relu.attributes.is_empty());

        let t = |name: &str| g.initializer(name).unwrap_or_else(|| panic!("initializer {name}"));
        assert_eq!(g.initializers.len(), 11);
        assert_eq!(t("w").dims, [2, 3]);
        assert_eq!(t("w").shape().unwrap(), [2, 3]);
        assert_eq!(t("w").element_count().unwrap(), 6);
        assert_eq!(t("w").to_f64().unwrap(), [1.0, -2.0, 0.25, 3.5, -0.5, f64::from(1e-3f32)]);
        assert_eq!(t("b").dims, [3]);
        assert_eq!(t("b").float_data, [0.5, -1.5, 2.0]);
        assert_eq!(t("b").to_f64().unwrap(), [0.5, -1.5, 2.0]);
        assert_eq!(t("fu").to_f64().unwrap(), [7.0, -8.0]);
        assert_eq!(t("shape").to_i64().unwrap(), [-1, 1024]);
        assert_eq!(t("i64raw").to_i64().unwrap(), [5, -6]);
        assert_eq!(t("i32raw").dims, [] as [i64; 0]);
        assert_eq!(t("i32raw").to_i64().unwrap(), [-7]);
        assert_eq!(t("i32").int32_data, [1, -2, 3]);
        assert_eq!(t("i32").to_i64().unwrap(), [1, -2, 3]);
        assert_eq!(t("d").to_f64().unwrap(), [0.1, -2.5, 1e300]);
        assert_eq!(t("h").to_f64().unwrap(), [1.0, -2.0, 2f64.powi(-24)]);
        assert_eq!(t("h32").to_f64().unwrap(), [0.5]);
        assert_eq!(t("empty").element_count().unwrap(), 0);
        assert_eq!(t("empty").to_f64().unwrap(), [] as [f64; 0]);
        // Wrong kinds.
        assert!(t("w").to_i64().is_err());
        assert!(t("shape").to_f64().is_err());

        assert_eq!(g.inputs.len(), 2);
        let x = &g.inputs[0];
        assert_eq!((x.name.as_str(), x.elem_type), ("x", data_type::FLOAT));
        assert_eq!(x.dims, [Dim::Param("N".into()), Dim::Value(3), Dim::Unknown, Dim::Value(32)]);
        assert_eq!(g.inputs[1], ValueInfo { name: "seq".into(), elem_type: 0, dims: vec![] });
        assert_eq!(g.outputs, [ValueInfo { name: "z".into(), elem_type: 1, dims: vec![] }]);
    }

    #[test]
    fn onnx_every_truncation_fails() {
        let bytes = sample();
        assert!(decode_model(&bytes).is_ok());
        for cut in 0..bytes.len() {
            assert!(decode_model(&bytes[..cut]).is_err(), "a prefix of {cut} of {} bytes decodes", bytes.len());
        }
    }

    #[test]
    fn onnx_every_byte_flip_is_safe() {
        // Not a correctness check: no single-byte change may panic.
        let bytes = sample();
        for i in 0..bytes.len() {
            for x in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                if let Ok(m) = decode_model(&b) {
                    for t in &m.graph.initializers {
                        let _ = (t.to_f64(), t.to_i64());
                    }
                }
            }
        }
    }

    #[test]
    fn onnx_length_past_the_end() {
        let mut bytes = Vec::new();
        key(&mut bytes, 7, LEN);
        varint(&mut bytes, 100);
        bytes.extend_from_slice(&[1, 2, 3]);
        let e = decode_model(&bytes).unwrap_err();
        assert!(matches!(&e, OnnxError::Malformed { message: "ModelProto", field: "graph", number: 7, offset: 1, .. }), "{e:?}");
        assert!(reason(&e).contains("length 100 runs past the end"), "{e}");
        // The same inside a nested message: the offset is absolute.
        let graph = msg(|o| {
            key(o, 2, LEN);
            varint(o, 1 << 40);
        });
        let e = decode_model(&model_with_graph(&graph)).unwrap_err();
        assert!(matches!(&e, OnnxError::Malformed { message: "GraphProto", field: "name", offset: 5, .. }), "{e:?}");
    }

    #[test]
    fn onnx_varints() {
        // The largest 10-byte varint: ir_version -1.
        let mut ok = vec![0x08];
        ok.extend_from_slice(&[0xff; 9]);
        ok.push(0x01);
        len(&mut ok, 7, &[]);
        assert_eq!(decode_model(&ok).unwrap().ir_version, -1);
        // Eleven bytes.
        let mut long = vec![0x08];
        long.extend_from_slice(&[0x80; 10]);
        long.push(0x01);
        let e = decode_model(&long).unwrap_err();
        assert!(matches!(&e, OnnxError::Malformed { field: "ir_version", offset: 1, .. }), "{e:?}");
        // Ten bytes, above 64 bits.
        let mut big = vec![0x08];
        big.extend_from_slice(&[0xff; 9]);
        big.push(0x02);
        assert!(decode_model(&big).is_err());
        // A truncated key, field number 0, one above the largest.
        assert!(decode_model(&[0x80]).is_err());
        assert!(decode_model(&[0x00, 0x00]).is_err());
        let mut high = Vec::new();
        varint(&mut high, (MAX_FIELD + 1) << 3);
        assert!(decode_model(&high).is_err());
    }

    #[test]
    fn onnx_invalid_utf8() {
        let graph = msg(|o| len(o, 1, &msg(|n| len(n, 3, &[b'a', 0xc3, 0x28]))));
        let e = decode_model(&model_with_graph(&graph)).unwrap_err();
        assert!(matches!(&e, OnnxError::Malformed { message: "NodeProto", field: "name", number: 3, offset: 7, .. }), "{e:?}");
        assert!(reason(&e).contains("not UTF-8"), "{e}");
    }

    #[test]
    fn onnx_external_data() {
        let located = msg(|o| {
            len(o, 8, b"w");
            int(o, 2, 1);
            int(o, 14, 1);
        });
        let listed = msg(|o| {
            len(o, 8, b"w");
            int(o, 2, 1);
            len(o, 13, &msg(|e| len(e, 1, b"location")));
        });
        for t in [located, listed] {
            let e = decode_tensor(&t).unwrap_err();
            assert_eq!(e, OnnxError::ExternalData { tensor: "w".into() });
            assert!(reason(&e).contains("external data not supported: save the model with all tensors inside the .onnx file"));
        }
        // Also for a tensor built by hand.
        let t = TensorProto { data_type: 1, data_location: DATA_LOCATION_EXTERNAL, ..Default::default() };
        assert!(matches!(t.to_f64(), Err(OnnxError::ExternalData { .. })));
    }

    #[test]
    fn onnx_dims_must_match_the_data() {
        let t = |dims: &[i64], raw: Option<Vec<u8>>, floats: &[f32]| TensorProto {
            name: "t".into(),
            dims: dims.to_vec(),
            data_type: data_type::FLOAT,
            float_data: floats.to_vec(),
            raw_data: raw,
            ..Default::default()
        };
        let raw3 = Some(packed_f32(&[1.0, 2.0, 3.0]));
        assert!(t(&[3], raw3.clone(), &[]).to_f64().is_ok());
        let e = t(&[2, 2], raw3.clone(), &[]).to_f64().unwrap_err();
        assert_eq!(reason(&e), "tensor \"t\": raw_data holds 12 bytes, dims [2, 2] need 4 elements of 4 bytes (16 bytes)");
        assert!(t(&[2, 2], None, &[1.0, 2.0, 3.0]).to_f64().is_err());
        assert!(t(&[], None, &[1.0, 2.0]).to_f64().is_err());
        assert_eq!(t(&[], None, &[1.5]).to_f64().unwrap(), [1.5]);
        assert!(t(&[3], raw3, &[1.0, 2.0, 3.0]).to_f64().is_err(), "both raw_data and float_data");
        assert!(t(&[3], None, &[]).to_f64().is_err(), "no data");
        assert!(t(&[-1, 3], None, &[]).to_f64().is_err());
        assert!(t(&[i64::MAX, i64::MAX], None, &[]).element_count().is_err());
        assert!(t(&[1 << 62, 4], Some(vec![0; 16]), &[]).to_f64().is_err());
        // Decoded: a raw FLOAT tensor of 3 values with dims [2, 2].
        let bytes = msg(|o| {
            int(o, 1, 2);
            int(o, 1, 2);
            int(o, 2, 1);
            len(o, 9, &packed_f32(&[1.0, 2.0, 3.0]));
        });
        assert!(decode_tensor(&bytes).unwrap().to_f64().is_err());
        // FLOAT16 bits out of range.
        let h = TensorProto { data_type: data_type::FLOAT16, dims: vec![1], int32_data: vec![70000], ..Default::default() };
        assert!(h.to_f64().is_err());
    }

    #[test]
    fn onnx_wire_types() {
        // Groups (3, 4) and the invalid 6 and 7, known or unknown field.
        for wire in [3, 4, 6, 7] {
            for field in [7, 1000] {
                let mut bytes = Vec::new();
                key(&mut bytes, field, wire);
                bytes.extend_from_slice(&[0; 8]);
                let e = decode_model(&bytes).unwrap_err();
                assert!(matches!(&e, OnnxError::Malformed { offset: 0, .. }), "{e:?}");
                assert!(reason(&e).contains("wire type"), "{e}");
            }
        }
        // A known field with the wrong wire type.
        let mut bytes = Vec::new();
        len(&mut bytes, 1, b"8");
        assert!(decode_model(&bytes).is_err());
        let graph = msg(|o| int(o, 1, 3));
        assert!(decode_model(&model_with_graph(&graph)).is_err());
        // Packed floats whose length is not a multiple of 4; truncated fixed values.
        assert!(decode_tensor(&msg(|o| len(o, 4, &[0; 6]))).is_err());
        assert!(decode_tensor(&msg(|o| len(o, 10, &[0; 12]))).is_err());
        let mut cut = Vec::new();
        key(&mut cut, 1001, FIXED64);
        cut.extend_from_slice(&[0; 7]);
        assert!(decode_model(&cut).is_err());
    }

    #[test]
    fn onnx_structure() {
        // No graph; two graphs; a TENSOR attribute without t.
        let e = decode_model(&[0x08, 0x07]).unwrap_err();
        assert!(matches!(&e, OnnxError::Malformed { field: "graph", number: 7, offset: 2, .. }), "{e:?}");
        assert!(decode_model(&[]).is_err());
        let mut twice = model_with_graph(&[]);
        len(&mut twice, 7, &[]);
        assert!(decode_model(&twice).is_err());
        let node = msg(|n| len(n, 5, &msg(|a| int(a, 20, 4))));
        let e = decode_model(&model_with_graph(&msg(|g| len(g, 1, &node)))).unwrap_err();
        assert!(matches!(&e, OnnxError::Malformed { message: "AttributeProto", field: "t", .. }), "{e:?}");
        // An empty graph is fine (for the decoder).
        assert_eq!(decode_model(&model_with_graph(&[])).unwrap().graph, GraphProto::default());
    }

    #[test]
    fn onnx_limits() {
        let bytes = sample();
        let e = decode_with(&bytes, 10, DECODED_SLACK).unwrap_err();
        assert_eq!(e, OnnxError::TooLarge { size: bytes.len(), limit: 10 });
        // Many empty nodes (2 bytes each) would expand far beyond the input.
        let graph: Vec<u8> = (0..1000).flat_map(|_| [0x0a, 0x00]).collect();
        let bytes = model_with_graph(&graph);
        assert_eq!(decode_model(&bytes).unwrap().graph.nodes.len(), 1000);
        let e = decode_with(&bytes, MAX_MODEL_BYTES, 0).unwrap_err();
        assert!(matches!(e, OnnxError::DecodedTooLarge { .. }), "{e:?}");
        assert!(decode_with(&sample(), MAX_MODEL_BYTES, 0).is_ok(), "the sample fits in {DECODED_FACTOR} x its size");
    }

    #[test]
    fn onnx_f16() {
        assert_eq!(f16_to_f64(0x0000), 0.0);
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert_eq!(f16_to_f64(0x0400), 2f64.powi(-14));
        assert_eq!(f16_to_f64(0x3555), 0.333251953125);
        assert_eq!(f16_to_f64(0xfc00), f64::NEG_INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
    }

    fn test_files() -> Vec<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no .onnx files in {}", dir.display());
        files
    }

    /// Every exported model decodes and agrees with what the exporting
    /// script recorded beside it (`<model>.json`, from the onnx package).
    #[test]
    fn onnx_pytorch_exports_decode() {
        for path in test_files() {
            let file = path.file_name().unwrap().to_str().unwrap().to_string();
            let bytes = std::fs::read(&path).unwrap();
            let m = decode_model(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
            // The proportional budget alone suffices for real models.
            decode_with(&bytes, MAX_MODEL_BYTES, 0).unwrap_or_else(|e| panic!("{file}: {e}"));
            let g = &m.graph;
            assert!(!g.nodes.is_empty(), "{file}: no nodes");

            let stem = file.split('.').next().unwrap();
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path.with_file_name(format!("{stem}.json"))).unwrap()).unwrap();
            let rec = &json["files"][&file];
            assert_eq!(g.nodes.len() as u64, rec["nodes"].as_u64().unwrap(), "{file}: nodes");
            assert_eq!(g.initializers.len() as u64, rec["initializers"].as_u64().unwrap(), "{file}: initializers");
            assert_eq!(m.ir_version, rec["ir_version"].as_i64().unwrap(), "{file}");
            assert_eq!(m.opset_version(""), rec["opset_imports"]["ai.onnx"].as_i64(), "{file}");
            let producer = format!("{} {}", m.producer_name, m.producer_version);
            assert_eq!(producer, rec["producer"].as_str().unwrap(), "{file}");
            let mut counts = std::collections::BTreeMap::<&str, u64>::new();
            for n in &g.nodes {
                *counts.entry(n.op_type.as_str()).or_default() += 1;
            }
            let expected: std::collections::BTreeMap<&str, u64> =
                rec["op_counts"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v.as_u64().unwrap())).collect();
            assert_eq!(counts, expected, "{file}: op counts");

            let input = g.inputs.iter().find(|v| g.initializer(&v.name).is_none()).expect("a graph input");
            assert_eq!(input.name, rec["graph_input"]["name"].as_str().unwrap(), "{file}");
            assert_eq!(input.elem_type, data_type::FLOAT, "{file}");
            let shape = rec["graph_input"]["shape"].as_array().unwrap();
            assert_eq!(input.dims.len(), shape.len(), "{file}");
            for (d, s) in input.dims.iter().zip(shape) {
                match (d, s.as_i64()) {
                    (Dim::Value(v), Some(s)) => assert_eq!(*v, s, "{file}"),
                    (Dim::Param(_), None) => {}
                    _ => panic!("{file}: input dims {:?}, recorded {shape:?}", input.dims),
                }
            }
            assert_eq!(g.outputs[0].name, rec["graph_output"].as_str().unwrap(), "{file}");

            for t in &g.initializers {
                let n = t.element_count().unwrap_or_else(|e| panic!("{file}: {e}"));
                match t.data_type {
                    data_type::FLOAT => {
                        let v = t.to_f64().unwrap_or_else(|e| panic!("{file}: {e}"));
                        assert_eq!(v.len(), n);
                        assert!(v.iter().all(|x| x.is_finite()), "{file}: {}", t.name);
                    }
                    data_type::INT64 | data_type::INT32 => assert_eq!(t.to_i64().unwrap_or_else(|e| panic!("{file}: {e}")).len(), n),
                    other => panic!("{file}: initializer {} of type {}", t.name, data_type::name(other)),
                }
            }
            for n in &g.nodes {
                for a in &n.attributes {
                    if let AttrValue::Tensor(t) = &a.value {
                        let ok = if t.data_type == data_type::FLOAT { t.to_f64().map(drop) } else { t.to_i64().map(drop) };
                        ok.unwrap_or_else(|e| panic!("{file}: node {} attribute {}: {e}", n.name, a.name));
                    }
                }
            }
        }
    }

    /// Proper prefixes of a real file, every 61st: all fail, none panics.
    #[test]
    fn onnx_pytorch_export_truncations_fail() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx/depthwise_block.opset13.onnx");
        let bytes = std::fs::read(path).unwrap();
        for cut in (0..bytes.len()).step_by(61) {
            assert!(decode_model(&bytes[..cut]).is_err(), "a prefix of {cut} bytes decodes");
        }
    }

    /// The op types of one export (`--nocapture` prints them).
    #[test]
    fn onnx_print_op_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx/resnet20_akamaster.opset13.onnx");
        let m = decode_model(&std::fs::read(path).unwrap()).unwrap();
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for n in &m.graph.nodes {
            *counts.entry(n.op_type.as_str()).or_default() += 1;
        }
        println!("resnet20_akamaster.opset13.onnx: ir {}, opsets {:?}, op types {counts:?}", m.ir_version, m.opset_imports);
        assert_eq!(counts.get("Conv"), Some(&19));
    }
}
