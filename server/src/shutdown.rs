//! The one shutdown path. `main` owns the [`Shutdown`]; every long-lived task (SSE and
//! WebSocket streams, runners, the reaper, webhook deliveries) holds a clone and has a
//! `select!` arm on [`Shutdown::requested`], so a SIGTERM ends them all at once instead of
//! waiting for each to notice on its own (axum's graceful shutdown waits for open bodies).

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells every holder to stop.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has been triggered.
    pub fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has been triggered (at once if it already was).
    pub async fn requested(&self) {
        self.token.cancelled().await
    }
}
