//! Following a terminal's output from a sequence number: the one loop behind its WebSocket
//! and its SSE stream. A follower counts as an attached client for as long as it lives.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::{Attached, Terminal};
use crate::node::{TerminalEvents, TerminalFollowed};

pub struct TerminalFollower {
    terminal: Arc<Terminal>,
    _attached: Attached,
    after: u64,
    keepalive: Duration,
    queue: VecDeque<TerminalFollowed>,
    done: bool,
}

impl TerminalFollower {
    pub fn new(terminal: Arc<Terminal>, after: u64, keepalive: Duration) -> Self {
        // A resume point past the newest output means "from now on", never "skip what the
        // terminal writes next" (nor its exit).
        let after = after.min(terminal.lock().ring.last_seq());
        Self {
            _attached: terminal.attach(),
            terminal,
            after,
            keepalive,
            queue: VecDeque::new(),
            done: false,
        }
    }

    /// The next item; `None` after the exit. Cancel-safe.
    pub async fn next(&mut self) -> Option<TerminalFollowed> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            // Register for wake-ups before looking, so nothing lands in between unseen.
            let changed = self.terminal.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (gap, chunks, exit) = {
                let st = self.terminal.lock();
                let (gap, chunks) = st.ring.since(self.after);
                let exit = st.exited_at.map(|_| (st.ring.last_seq() + 1, st.exit_code));
                (gap, chunks, exit)
            };
            if let Some((from_seq, to_seq)) = gap {
                self.after = to_seq;
                self.queue
                    .push_back(TerminalFollowed::Gap { from_seq, to_seq });
            }
            for chunk in chunks {
                self.after = chunk.seq;
                self.queue.push_back(TerminalFollowed::Output {
                    seq: chunk.seq,
                    data: chunk.data,
                });
            }
            if let Some((seq, code)) = exit {
                if self.after < seq {
                    self.after = seq;
                    self.queue.push_back(TerminalFollowed::Exit { seq, code });
                }
                self.done = true;
                continue;
            }
            if !self.queue.is_empty() {
                continue;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep(self.keepalive) => return Some(TerminalFollowed::Idle),
            }
        }
    }

    pub fn into_events(self) -> TerminalEvents {
        Box::pin(futures_util::stream::unfold(self, |mut f| async move {
            f.next().await.map(|item| (item, f))
        }))
    }
}
