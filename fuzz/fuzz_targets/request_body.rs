//! A raw `POST /graphql` body, from a caller whose token has no role: the
//! JSON envelope, the document and its variables through admission,
//! validation and execution. See `actiongate::fuzz_request_body`.

#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    actiongate::fuzz_request_body(body);
});
