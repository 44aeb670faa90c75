#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peregrine_fuzzing::run("seqinfo", data));
