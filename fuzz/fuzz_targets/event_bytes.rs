//! Fuzz target `event_bytes`: runs `checks::event_bytes` (tests/checks/mod.rs, shared with
//! the seed test tests/fuzz_seeds.rs) on every input libFuzzer makes.

#![no_main]

#[path = "../../tests/checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::event_bytes(data));
