//! A raw JSON value as an `ActionFilter` and as an `InvokeActionInput`,
//! parsed and validated. See `actiongate::fuzz_input_values`.

#![no_main]

libfuzzer_sys::fuzz_target!(|json: &[u8]| {
    actiongate::fuzz_input_values(json);
});
