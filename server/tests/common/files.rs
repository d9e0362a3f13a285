//! Helpers of the files API tests (`files.rs`, `files_transfer.rs`, `files_security.rs`).

use reqwest::Method;
use serde_json::Value;

use super::Sandbox;

/// A path as a query-string value.
pub fn enc(path: &str) -> String {
    url::form_urlencoded::byte_serialize(path.as_bytes()).collect()
}

/// `GET route?path=…`.
pub async fn get(sb: &Sandbox, route: &str, path: &str) -> (u16, Value) {
    sb.call(Method::GET, &format!("{route}?path={}", enc(path)), None)
        .await
}

/// `POST /files/write` (asserting 200).
pub async fn write(sb: &Sandbox, body: Value) -> Value {
    let (status, reply) = sb.call(Method::POST, "/files/write", Some(body)).await;
    assert_eq!(status, 200, "write failed: {reply}");
    reply
}

/// A request to the sandbox's agent with its token, to build by hand.
pub fn raw(sb: &Sandbox, method: Method, route: &str) -> reqwest::RequestBuilder {
    sb.http
        .request(method, format!("{}{route}", sb.agent))
        .header("Authorization", format!("Bearer {}", sb.token))
}
