//! Fuzz target `engine_ops`: runs `checks::engine_ops` (tests/checks/mod.rs, shared with
//! the seed test tests/fuzz_seeds.rs) on every input libFuzzer makes.

#![no_main]

#[path = "../../tests/checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::engine_ops(data));
