//! Status vocabularies, defined once.

use serde::{Deserialize, Serialize};

/// Lifecycle of a background process (the union of every HopX source, `docs/protocol.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProcessStatus {
    Queued,
    Running,
    /// Exited with code 0.
    Completed,
    /// Exited non-zero, or could not start, or was lost to a server restart.
    Failed,
    /// Killed on request.
    Killed,
    /// Killed by its own timeout.
    Timeout,
}

impl ProcessStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Killed => "killed",
            Self::Timeout => "timeout",
        }
    }

    /// Whether the process has ended for good.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "killed" => Self::Killed,
            "timeout" => Self::Timeout,
            _ => return None,
        })
    }
}

/// Lifecycle of a sandbox (`docs/protocol.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SandboxStatus {
    Creating,
    Running,
    Paused,
    Stopped,
    Error,
    Deleted,
    /// Cluster mode: its node stopped answering; the sandbox is gone (`SANDBOX_LOST`).
    Lost,
}

impl SandboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Error => "error",
            Self::Deleted => "deleted",
            Self::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "creating" => Self::Creating,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "stopped" => Self::Stopped,
            "error" => Self::Error,
            "deleted" => Self::Deleted,
            "lost" => Self::Lost,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_status_round_trips_through_its_wire_string() {
        for s in [
            ProcessStatus::Queued,
            ProcessStatus::Running,
            ProcessStatus::Completed,
            ProcessStatus::Failed,
            ProcessStatus::Killed,
            ProcessStatus::Timeout,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(ProcessStatus::parse(s.as_str()), Some(s));
        }
        assert!(ProcessStatus::Killed.is_final());
        assert!(!ProcessStatus::Running.is_final());
    }
}
