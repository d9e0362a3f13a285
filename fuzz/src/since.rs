//! `fuzz_since`: the stream resume position, from `Last-Event-ID` and `since=`.

use arbitrary::Unstructured;
use sandlot_protocol as wire;
use sandlot_server::fuzzing as server;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SinceQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<u64>,
}

/// Where an SSE stream resumes (`?since=` and `Last-Event-ID`, `api/stream.rs`). The input
/// is the query string, then optionally a newline and the header's value. Properties: no
/// panic; a query that does not parse is a 400 `INVALID_REQUEST`; without a query the
/// header decides (a non-number is ignored). Then, from the same bytes, numbers as a client
/// writes them: `?since=` wins over the header, and each is read back exactly.
pub fn since(data: &[u8]) {
    let (query, header) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let query = String::from_utf8_lossy(query);
    match server::resume_after(&query, header) {
        None => {}
        Some(Err((status, code, _))) => {
            assert_eq!(status, 400);
            assert_eq!(code, wire::code::INVALID_REQUEST);
        }
        Some(Ok(after)) if query.is_empty() => {
            let from_header = header
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| h.trim_matches([' ', '\t']).parse::<u64>().ok());
            assert_eq!(after, from_header.unwrap_or(0));
        }
        Some(Ok(_)) => {}
    }

    let mut u = Unstructured::new(data);
    let (Ok(since), Ok(last), Ok(pad)) = (
        u.arbitrary::<Option<u64>>(),
        u.arbitrary::<Option<u64>>(),
        u.arbitrary::<bool>(),
    ) else {
        return;
    };
    let query = serde_urlencoded::to_string(SinceQuery { since }).expect("encodes");
    let header = match last {
        Some(n) if pad => format!(" {n}\t"),
        Some(n) => n.to_string(),
        None => "not-a-number".into(),
    };
    assert_eq!(
        server::resume_after(&query, Some(header.as_bytes())),
        Some(Ok(since.or(last).unwrap_or(0))),
        "query {query:?}, Last-Event-ID {header:?}"
    );
}
