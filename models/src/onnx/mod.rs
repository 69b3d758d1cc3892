//! ONNX models: [`proto`] decodes the protobuf file format (`.onnx`) into
//! plain structs, by hand and without panicking on hostile input; importing
//! the decoded graph as a [`crate::Network`] builds on it ([`import`]).

pub mod import;
pub mod proto;
