//! The status unions of processes and sandboxes, one JS string per wire status.

use sandlot_protocol as wire;
use serde::Serialize;

use crate::args::FromJs;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

/// Lifecycle of a background process.
#[derive(Tsify, Serialize, FromJs, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Killed,
    Timeout,
}

impl From<wire::ProcessStatus> for ProcessStatus {
    fn from(s: wire::ProcessStatus) -> Self {
        match s {
            wire::ProcessStatus::Queued => Self::Queued,
            wire::ProcessStatus::Running => Self::Running,
            wire::ProcessStatus::Completed => Self::Completed,
            wire::ProcessStatus::Failed => Self::Failed,
            wire::ProcessStatus::Killed => Self::Killed,
            wire::ProcessStatus::Timeout => Self::Timeout,
        }
    }
}

impl ProcessStatus {
    /// The JS (and wire) string.
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
}

/// Lifecycle of a sandbox.
#[derive(Tsify, Serialize, FromJs, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SandboxStatus {
    Creating,
    Running,
    Paused,
    Stopped,
    Error,
    Deleted,
    /// Cluster mode: its node stopped answering; the sandbox is gone.
    Lost,
}

impl From<wire::SandboxStatus> for SandboxStatus {
    fn from(s: wire::SandboxStatus) -> Self {
        match s {
            wire::SandboxStatus::Creating => Self::Creating,
            wire::SandboxStatus::Running => Self::Running,
            wire::SandboxStatus::Paused => Self::Paused,
            wire::SandboxStatus::Stopped => Self::Stopped,
            wire::SandboxStatus::Error => Self::Error,
            wire::SandboxStatus::Deleted => Self::Deleted,
            wire::SandboxStatus::Lost => Self::Lost,
        }
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn every_wire_status_maps_to_its_own_string() {
        for s in [
            wire::ProcessStatus::Queued,
            wire::ProcessStatus::Running,
            wire::ProcessStatus::Completed,
            wire::ProcessStatus::Failed,
            wire::ProcessStatus::Killed,
            wire::ProcessStatus::Timeout,
        ] {
            let js = serde_wasm_bindgen::to_value(&ProcessStatus::from(s)).unwrap();
            assert_eq!(js.as_string().as_deref(), Some(s.as_str()));
            assert_eq!(ProcessStatus::from(s).is_final(), s.is_final());
            assert_eq!(ProcessStatus::from(s).as_str(), s.as_str());
        }
    }
}
