//! The API contract: schemathesis (all checks, every phase, stateful
//! included; 30 examples per operation) against this build's
//! `peregrine serve --token` and the OpenAPI document it serves, through
//! `bench/contract/run.sh` (which runs 300 examples by default). About 30 s:
//! it is a real server answering some 1,400 generated requests.
//! schemathesis comes from `scripts/setup.sh --deps` (into
//! bench/.venv-contract); without it the test says so and passes.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_api_answers_as_its_openapi_document_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let st = std::env::var_os("SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("bench/.venv-contract/bin/schemathesis"));
    if !st.exists() {
        eprintln!(
            "SKIPPED: schemathesis not found at {} (run scripts/setup.sh --deps, or set SCHEMATHESIS)",
            st.display()
        );
        return;
    }
    let out = Command::new(root.join("bench/contract/run.sh"))
        .arg("30")
        .env("PEREGRINE_BIN", env!("CARGO_BIN_EXE_peregrine"))
        .env("PEREGRINE_TEST_DATA", common::data_dir())
        .env("SCHEMATHESIS", &st)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found contract failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("passed"), "{text}");
}
