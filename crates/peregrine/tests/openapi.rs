//! `peregrine openapi`: the service's OpenAPI document, for generating the
//! dashboard's API types, without a server or an inference device.

mod common;

use common::*;

#[test]
fn openapi_prints_the_document_the_service_serves() {
    let r = peregrine(&["openapi"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::to_value(peregrine_server::openapi()).unwrap()
    );
    for path in [
        "/api/v1/runs",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/video",
        "/api/v1/runs/{id}/timeline",
        "/api/v1/runs/{id}/frames_index",
        "/api/v1/models",
        "/api/v1/whoami",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/api/v1/runs/{id}"]["delete"].is_object());
    assert!(doc["components"]["schemas"]["RunSummary"]["properties"]["t_offset"].is_object());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("openapi.json");
    let r = peregrine(&["openapi", "--out", out.to_str().unwrap()], &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written, doc);
    let r = peregrine(&["openapi", "--out", "/nonexistent-dir/x.json"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("/nonexistent-dir/x.json: cannot write"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}
