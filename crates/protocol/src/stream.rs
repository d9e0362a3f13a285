//! Output stream events: the `data` of each Server-Sent Event on
//! `GET /execute/processes/{id}/stream` and `POST /execute/stream`. The SSE `id` of an output,
//! `truncated` or `exit` event is its sequence number (`seq`, or `to_seq` for a gap), which a
//! client sends back as `Last-Event-ID` (or `?since=`) to resume after it.

use serde::{Deserialize, Serialize};

use crate::ProcessStatus;

/// One stream event, tagged by `type` (the same word as the SSE `event:` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamEvent {
    /// First event of `POST /execute/stream`: the process that was started.
    Start {
        process_id: String,
        execution_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
    },
    Stdout {
        data: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
    },
    Stderr {
        data: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
    },
    /// Events `from_seq..=to_seq` were dropped to stay within the output cap.
    Truncated {
        from_seq: u64,
        to_seq: u64,
        dropped_bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The process ended; nothing follows.
    Exit {
        status: ProcessStatus,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        execution_time: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
        seq: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_events_read_what_the_server_writes() {
        let out: StreamEvent = serde_json::from_str(
            r#"{"type":"stdout","data":"hi\n","timestamp":"2026-01-01T00:00:00.000Z","seq":3}"#,
        )
        .unwrap();
        assert!(matches!(out, StreamEvent::Stdout { seq: 3, .. }));
        let exit: StreamEvent = serde_json::from_str(
            r#"{"type":"exit","status":"completed","exit_code":0,"execution_time":1.5,"error":null,"timestamp":"t","seq":9}"#,
        )
        .unwrap();
        assert!(matches!(
            exit,
            StreamEvent::Exit {
                status: ProcessStatus::Completed,
                exit_code: Some(0),
                seq: 9,
                ..
            }
        ));
        let gap: StreamEvent = serde_json::from_str(
            r#"{"type":"truncated","from_seq":3,"to_seq":9,"dropped_bytes":100,"message":"m"}"#,
        )
        .unwrap();
        assert!(matches!(gap, StreamEvent::Truncated { to_seq: 9, .. }));
    }
}
