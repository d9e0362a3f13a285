#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sandlot_fuzz::token(data));
