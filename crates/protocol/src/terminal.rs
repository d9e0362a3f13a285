//! Interactive terminals (`docs/protocol.md` §5, "Terminals"): a shell on a real PTY inside
//! the sandbox.
//!
//! HopX's `WS /terminal` frames ([`TerminalClientFrame`], [`TerminalServerFrame`]) and
//! Sandlot's fetch-friendly extension for clients without a WebSocket: `POST /terminals`,
//! an SSE stream of [`TerminalEvent`]s, and plain POSTs for input and resize.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Terminal size when the request gives none (the classic 80×24).
pub const DEFAULT_COLS: u16 = 80;
pub const DEFAULT_ROWS: u16 = 24;
/// The largest accepted side of a terminal, in cells.
pub const MAX_SIDE: u16 = 1000;

/// `POST /terminals`; the WebSocket takes the same options as query parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateTerminalRequest {
    /// Columns (1 to 1000; default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub cols: Option<u16>,
    /// Rows (1 to 1000; default 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub rows: Option<u16>,
    /// Working directory (absolute; default `/workspace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Variables on top of the sandbox's environment (`TERM` defaults to `xterm-256color`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Absolute path of the shell; default `/bin/bash`, or `/bin/sh` where bash is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
}

/// Whether a terminal's shell still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TerminalStatus {
    Running,
    Exited,
}

/// One terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalInfo {
    pub terminal_id: String,
    pub status: TerminalStatus,
    /// The shell that runs (after the `/bin/bash` → `/bin/sh` fallback).
    pub shell: String,
    pub cwd: String,
    pub cols: u16,
    pub rows: u16,
    /// The shell's exit code once it has exited (128 + signal when it was killed).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Clients following its output now (WebSockets and SSE streams).
    pub attached: usize,
    /// Sequence number of the newest output event (0 before any output).
    pub last_seq: u64,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<String>,
}

/// `GET /terminals`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalList {
    pub terminals: Vec<TerminalInfo>,
    pub count: usize,
}

/// `POST /terminals/{tid}/input`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalInputRequest {
    /// The bytes to type: text, or base64 when `encoding` is `base64`.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub data: Option<String>,
    /// `utf8` (default) or `base64` (for bytes that are not text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// Reply of `POST /terminals/{tid}/input`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalInputReply {
    pub terminal_id: String,
    /// Bytes written to the terminal.
    pub bytes: usize,
}

/// `POST /terminals/{tid}/resize`, and the WebSocket's `resize` frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalResize {
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = u16, minimum = 1, maximum = 1000))]
    pub cols: Option<u16>,
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = u16, minimum = 1, maximum = 1000))]
    pub rows: Option<u16>,
}

/// What a client sends on `WS /terminal` (HopX §4.11), tagged by `type`. A binary frame is
/// typed as it is (Sandlot extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalClientFrame {
    Input(TerminalInputRequest),
    Resize(TerminalResize),
}

/// Output on the WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalOutputFrame {
    pub data: String,
}

/// The shell exited; the server closes the socket after this frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalExitFrame {
    pub code: Option<i32>,
}

/// A frame the server could not act on (bad JSON, unknown type, input refused). The
/// session goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalErrorFrame {
    pub error: String,
    pub code: String,
}

/// What the server sends on `WS /terminal`, tagged by `type` (`error` is a Sandlot
/// extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalServerFrame {
    Output(TerminalOutputFrame),
    Exit(TerminalExitFrame),
    Error(TerminalErrorFrame),
}

/// Output on the SSE stream of `GET /terminals/{tid}/stream`; its SSE id is `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalOutputEvent {
    /// Text (invalid UTF-8 replaced), or base64 of the exact bytes with `?encoding=base64`.
    pub data: String,
    pub seq: u64,
}

/// Output events `from_seq..=to_seq` left the replay buffer before this client read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalTruncatedEvent {
    pub from_seq: u64,
    pub to_seq: u64,
}

/// The shell exited; nothing follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalExitEvent {
    pub code: Option<i32>,
    pub seq: u64,
}

/// One SSE event of a terminal's stream, tagged by `type` (the same word as `event:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalEvent {
    Output(TerminalOutputEvent),
    Truncated(TerminalTruncatedEvent),
    Exit(TerminalExitEvent),
}

impl TerminalEvent {
    /// The `type` tag (and SSE event name).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Output(_) => "output",
            Self::Truncated(_) => "truncated",
            Self::Exit(_) => "exit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopx_terminal_frames_read_and_write_as_documented() {
        let input: TerminalClientFrame =
            serde_json::from_str(r#"{"type":"input","data":"ls -la\n"}"#).unwrap();
        assert_eq!(
            input,
            TerminalClientFrame::Input(TerminalInputRequest {
                data: Some("ls -la\n".into()),
                encoding: None
            })
        );
        let resize: TerminalClientFrame =
            serde_json::from_str(r#"{"type":"resize","cols":120,"rows":40}"#).unwrap();
        assert_eq!(
            resize,
            TerminalClientFrame::Resize(TerminalResize {
                cols: Some(120),
                rows: Some(40)
            })
        );
        assert!(serde_json::from_str::<TerminalClientFrame>(r#"{"type":"paste"}"#).is_err());
        let out = serde_json::to_string(&TerminalServerFrame::Output(TerminalOutputFrame {
            data: "hi\r\n".into(),
        }))
        .unwrap();
        assert_eq!(out, r#"{"type":"output","data":"hi\r\n"}"#);
        let exit = serde_json::to_string(&TerminalServerFrame::Exit(TerminalExitFrame {
            code: Some(3),
        }))
        .unwrap();
        assert_eq!(exit, r#"{"type":"exit","code":3}"#);
    }
}
