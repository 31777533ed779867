#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| zmtp::fuzz::session(data, std::time::Instant::now()));
