//! The evaluation endpoints are in the OpenAPI document (the dashboard's
//! types are generated from it).

#[test]
fn evaluation_routes_and_schemas_are_documented() {
    let doc = serde_json::to_value(peregrine_server::openapi()).unwrap();
    for (path, method) in [
        ("/api/v1/runs/{id}/evals", "post"),
        ("/api/v1/runs/{id}/evals", "get"),
        ("/api/v1/evals/{id}", "get"),
        ("/api/v1/evals/{id}/matches", "get"),
        ("/api/v1/evals/{id}/errors", "get"),
        ("/api/v1/compare", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert_eq!(op["tags"][0], "evals", "{method} {path}");
    }
    for schema in [
        "EvalView",
        "CreateEval",
        "UploadEval",
        "MatchItem",
        "MatchPageBody",
        "ErrorItem",
        "ErrorPageBody",
        "CompareBody",
        "CompareFrame",
        "RunRef",
        "EvalFormat",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
    let post = &doc["paths"]["/api/v1/runs/{id}/evals"]["post"];
    assert!(post["responses"]["201"].is_object());
    assert!(post["requestBody"]["content"]["multipart/form-data"].is_object());
}
