#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| zmtp::fuzz::curve_client(data, std::time::Instant::now()));
