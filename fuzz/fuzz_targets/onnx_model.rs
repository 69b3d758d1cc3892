#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pann_fuzz::onnx_model(data));
