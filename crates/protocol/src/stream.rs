//! Output stream events: the `data` of each Server-Sent Event on
//! `GET /execute/processes/{id}/stream` and `POST /execute/stream`. The SSE `id` of an output,
//! `truncated` or `exit` event is its sequence number (`seq`, or `to_seq` for a gap), which a
//! client sends back as `Last-Event-ID` (or `?since=`) to resume after it.
//!
//! Each kind has its own struct, so a client that already knows the kind (from `type` or the
//! SSE `event:` line) reads just that struct; [`StreamEvent`] is the tagged whole.

use serde::{Deserialize, Serialize};

use crate::{ProcessStatus, RunSpec};

/// First event of `POST /execute/stream`: the process that was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartEvent {
    pub process_id: String,
    pub execution_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// A piece of stdout or stderr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputEvent {
    pub data: String,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// Events `from_seq..=to_seq` were dropped to stay within the output cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TruncatedEvent {
    pub from_seq: u64,
    pub to_seq: u64,
    pub dropped_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The process ended; nothing follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExitEvent {
    pub status: ProcessStatus,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub execution_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The out-of-memory killer ended the process. Sandlot extension.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub seq: u64,
}

/// One stream event, tagged by `type` (the same word as the SSE `event:` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamEvent {
    Start(StartEvent),
    Stdout(OutputEvent),
    Stderr(OutputEvent),
    Truncated(TruncatedEvent),
    Exit(ExitEvent),
}

impl StreamEvent {
    /// The `type` tag (and SSE event name) of this event.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Start(_) => "start",
            Self::Stdout(_) => "stdout",
            Self::Stderr(_) => "stderr",
            Self::Truncated(_) => "truncated",
            Self::Exit(_) => "exit",
        }
    }
}

/// The client's first (and only) frame on the WebSocket `/execute/stream`. `type` may be
/// left out; when given it must be `execute`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WsExecuteFrame {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub run: RunSpec,
    /// Run in this context (see [`crate::CodeRunRequest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Run in a new process instead of a context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh: Option<bool>,
}

/// A piece of output on the WebSocket stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WsOutput {
    pub data: String,
    pub timestamp: String,
}

/// The run could not start, or timed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WsError {
    pub error: String,
    pub code: String,
    pub timestamp: String,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WsResult {
    pub exit_code: Option<i32>,
    pub execution_time: Option<f64>,
    pub timestamp: String,
}

/// The last frame of every session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WsComplete {
    pub success: bool,
}

/// What the server sends on the WebSocket `/execute/stream`, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WsServerFrame {
    Stdout(WsOutput),
    Stderr(WsOutput),
    Error(WsError),
    Result(WsResult),
    Complete(WsComplete),
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
        assert!(matches!(
            out,
            StreamEvent::Stdout(OutputEvent { seq: 3, .. })
        ));
        assert_eq!(out.kind(), "stdout");
        let exit: StreamEvent = serde_json::from_str(
            r#"{"type":"exit","status":"completed","exit_code":0,"execution_time":1.5,"error":null,"timestamp":"t","seq":9}"#,
        )
        .unwrap();
        assert!(matches!(
            exit,
            StreamEvent::Exit(ExitEvent {
                status: ProcessStatus::Completed,
                exit_code: Some(0),
                seq: 9,
                ..
            })
        ));
        let gap: StreamEvent = serde_json::from_str(
            r#"{"type":"truncated","from_seq":3,"to_seq":9,"dropped_bytes":100,"message":"m"}"#,
        )
        .unwrap();
        assert!(matches!(
            gap,
            StreamEvent::Truncated(TruncatedEvent { to_seq: 9, .. })
        ));
    }

    #[test]
    fn stream_events_write_the_type_tag_with_their_fields() {
        let json = serde_json::to_string(&StreamEvent::Stderr(OutputEvent {
            data: "x".into(),
            seq: 1,
            timestamp: None,
        }))
        .unwrap();
        assert_eq!(json, r#"{"type":"stderr","data":"x","seq":1}"#);
    }

    #[test]
    fn websocket_frames_carry_their_type() {
        let frame: WsExecuteFrame =
            serde_json::from_str(r#"{"type":"execute","code":"print(1)","timeout":5}"#).unwrap();
        assert_eq!(frame.kind.as_deref(), Some("execute"));
        assert_eq!(frame.run.code.as_deref(), Some("print(1)"));
        assert_eq!(frame.run.timeout, Some(5));
        let out =
            serde_json::to_string(&WsServerFrame::Complete(WsComplete { success: true })).unwrap();
        assert_eq!(out, r#"{"type":"complete","success":true}"#);
    }
}
