#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| zmtp::fuzz::curve_server(data, std::time::Instant::now()));
