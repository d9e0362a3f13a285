//! Commands: `POST /commands/run` and `POST /commands/background` (HopX §4.7). A command is
//! a program with arguments (`command` + `args`, as the HopX SDKs send `bash -c …`) or a
//! shell line (`command` alone, as the HopX docs show); both run as the sandbox's user.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The request of both routes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandRequest {
    /// The program, or (without `args`) a shell line. Required: an `Option` only so that
    /// its absence gets a clear error.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub command: Option<String>,
    /// Arguments of `command`, passed as they are (no shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Run-time limit in seconds (30 for `/commands/run`, 300 in the background).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The docs' name for `workdir`; accepted, never sent.
    #[serde(default, skip_serializing)]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// A label shown in process lists (background commands; the command line by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Reply of `POST /commands/run`. A command that fails is still a 200 with its exit code.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandResponse {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    /// Seconds.
    pub execution_time: f64,
    pub success: bool,
    /// The command as it was run (a shell line).
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::ProcessStatus>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdout_truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stderr_truncated: bool,
    /// Why it failed when it is not its own exit code (a timeout, the out-of-memory killer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The out-of-memory killer ended it. Sandlot extension.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}
