#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pann_fuzz::conv_kernel(data));
