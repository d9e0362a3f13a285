//! File wire types (`<public_host>/files/...`, `docs/protocol.md` §5.4).
//!
//! HopX clients disagree on list-item names (the docs say `is_directory`/`modified_time`, the
//! JS SDK reads `is_dir`/`modified`), so [`FileInfo`] carries both spellings.

use serde::{Deserialize, Serialize};

/// Reply of `GET /files/read`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileContent {
    /// The file's text, or its bytes in base64 when `encoding` is `base64`.
    pub content: String,
    pub path: String,
    /// Size in bytes of the file (not of `content`).
    pub size: u64,
    /// `base64` when the content is base64 (asked with `?encoding=base64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// `POST /files/write`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileWriteRequest {
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub path: Option<String>,
    /// Text, or base64 when `encoding` is `base64`.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub content: Option<String>,
    /// Octal permission bits, default `0644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `false` refuses to replace an existing file (409); default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    /// `base64` for binary content; absent or `utf-8` for text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// Reply of the file operations that change something (write, upload, mkdir, remove, rename).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileResponse {
    pub success: bool,
    pub message: String,
    pub path: String,
    /// Bytes written (write, upload); 0 otherwise.
    pub size: u64,
    pub timestamp: String,
}

/// One entry of `GET /files/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileInfo {
    pub name: String,
    pub path: String,
    pub size: u64,
    pub is_directory: bool,
    /// The same as `is_directory` (what the JS SDK reads).
    pub is_dir: bool,
    pub is_file: bool,
    /// The entry itself is a symbolic link (it is not followed).
    pub is_symlink: bool,
    /// RFC 3339 with a UTC offset.
    pub modified_time: String,
    /// The same as `modified_time` (what the JS SDK reads).
    pub modified: String,
    /// `ls`-style, e.g. `rw-r--r--`.
    pub permissions: String,
    /// Octal, e.g. `0644`.
    pub mode: String,
}

/// Reply of `GET /files/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileList {
    /// Sorted by name.
    pub files: Vec<FileInfo>,
    pub path: String,
    pub count: usize,
    /// True when the directory held more entries than one listing returns.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Reply of `GET /files/exists`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileExists {
    pub exists: bool,
    pub path: String,
}

/// `POST /files/mkdir` (and any body that names one path).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathRequest {
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub path: Option<String>,
}

/// `POST /files/rename` (Sandlot extension).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenameRequest {
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub from: Option<String>,
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub to: Option<String>,
    /// Accepted for `from`.
    #[serde(default, skip_serializing)]
    pub old_path: Option<String>,
    /// Accepted for `to`.
    #[serde(default, skip_serializing)]
    pub new_path: Option<String>,
    /// `true` replaces an existing `to`; default `false` (409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
}

/// The first frame of `WS /files/watch`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchRequest {
    /// `watch`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub path: Option<String>,
    /// Also watch subdirectories (Sandlot extension); default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
}

/// What happened to a watched path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileEventKind {
    Created,
    Modified,
    Deleted,
    Renamed,
}

/// A frame of `/files/watch` (WebSocket message, or SSE event named by `type`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchFrame {
    /// Something changed under the watched path.
    Change {
        path: String,
        event: FileEventKind,
        timestamp: String,
    },
    /// SSE only: the watch is in place (events from now on are reported).
    Watching {
        path: String,
        recursive: bool,
        timestamp: String,
    },
    /// The watch could not start, lost events, or ended; `code` says which.
    Error {
        error: String,
        code: String,
        timestamp: String,
    },
}

impl WatchFrame {
    /// The frame's `type` (the SSE event name).
    pub fn kind(&self) -> &'static str {
        match self {
            WatchFrame::Change { .. } => "change",
            WatchFrame::Watching { .. } => "watching",
            WatchFrame::Error { .. } => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_frames_are_tagged_with_their_type() {
        let frame = WatchFrame::Change {
            path: "/workspace/a".into(),
            event: FileEventKind::Created,
            timestamp: "t".into(),
        };
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "change", "path": "/workspace/a", "event": "created", "timestamp": "t"})
        );
        assert_eq!(frame.kind(), "change");
    }

    #[test]
    fn rename_accepts_old_and_new_path_and_write_defaults_stay_absent() {
        let r: RenameRequest =
            serde_json::from_str(r#"{"old_path":"/tmp/a","new_path":"/tmp/b"}"#).unwrap();
        assert_eq!(r.old_path.as_deref(), Some("/tmp/a"));
        let w: FileWriteRequest =
            serde_json::from_str(r#"{"path":"/tmp/a","content":"x"}"#).unwrap();
        assert!(w.mode.is_none() && w.overwrite.is_none() && w.encoding.is_none());
    }
}
