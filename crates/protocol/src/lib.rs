//! Wire types of the HopX sandbox API, as `sandlotd` serves it and the Sandlot SDK speaks it.
//!
//! Every name here is the exact snake_case name that travels on the wire (see
//! `docs/protocol.md`). The SDK's camelCase JS types are separate structs that
//! convert from these; the server serialises these directly. Optional fields are skipped when
//! absent so that clients which only tolerate present-or-missing keys stay happy.

pub mod agent;
pub mod cluster;
pub mod command;
pub mod context;
pub mod control;
pub mod error;
pub mod files;
pub mod language;
pub mod network;
pub mod observe;
pub mod signature;
pub mod status;
pub mod stream;
pub mod terminal;

pub use agent::*;
pub use cluster::*;
pub use command::*;
pub use context::*;
pub use control::*;
pub use error::*;
pub use files::*;
pub use language::Language;
pub use network::*;
pub use observe::*;
pub use status::*;
pub use stream::*;
pub use terminal::{
    CreateTerminalRequest, TerminalClientFrame, TerminalErrorFrame, TerminalEvent,
    TerminalExitEvent, TerminalExitFrame, TerminalInfo, TerminalInputReply, TerminalInputRequest,
    TerminalList, TerminalOutputEvent, TerminalOutputFrame, TerminalResize, TerminalServerFrame,
    TerminalStatus, TerminalTruncatedEvent,
};

/// Defaults that both sides must agree on (`docs/protocol.md` §5).
pub mod defaults {
    /// `POST /execute` timeout in seconds when the request gives none.
    pub const EXECUTE_TIMEOUT_SECS: u64 = 120;
    /// `POST /execute/background` timeout in seconds when the request gives none.
    pub const BACKGROUND_TIMEOUT_SECS: u64 = 300;
    /// `POST /execute/async` timeout in seconds when the request gives none.
    pub const ASYNC_TIMEOUT_SECS: u64 = 1800;
    /// Streamed runs (`/execute/stream`) when the request gives none.
    pub const STREAM_TIMEOUT_SECS: u64 = 60;
    /// `POST /execute/ipython` timeout in seconds when the request gives none.
    pub const IPYTHON_TIMEOUT_SECS: u64 = 60;
    /// Working directory of code runs.
    pub const WORKDIR: &str = "/workspace";
    /// Language when the request gives none.
    pub const LANGUAGE: &str = "python";
    /// Extra HTTP time a client allows on top of a synchronous run's timeout.
    pub const HTTP_GRACE_SECS: u64 = 30;
    /// Local server address used when nothing else is configured.
    pub const LOCAL_URL: &str = "http://127.0.0.1:7070";
}
