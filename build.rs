//! Decides, when the tests are built, whether the PostgreSQL half of the
//! integration suite runs: with `ACTIONGATE_TEST_POSTGRES_URL` set it does;
//! without it its tests are built as ignored (with the reason), so `cargo test`
//! reports them as ignored rather than as passed. The built-in test harness
//! only knows `#[ignore]` at compile time, hence a build-time switch; Cargo
//! builds again when the variable changes.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=ACTIONGATE_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(actiongate_postgres_tests)");
    let postgres = std::env::var("ACTIONGATE_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty());
    if postgres {
        println!("cargo::rustc-cfg=actiongate_postgres_tests");
    }
}
