//! Following a process's output live: the one loop behind every stream (SSE and WebSocket).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::events::{Gap, OutputEvent};
use super::ProcessEntry;

/// What a follower sees next.
#[derive(Debug)]
pub enum Followed {
    /// Events that were dropped to stay within the output cap.
    Gap(Gap),
    Output(OutputEvent),
    /// The process ended; the number is the exit event's sequence number.
    Exit(u64),
    /// Nothing happened for a keepalive period.
    Idle,
}

/// Yields a process's output after a given event, live, until its exit.
pub struct Follower {
    entry: Arc<ProcessEntry>,
    after: u64,
    keepalive: Duration,
    queue: VecDeque<Followed>,
    done: bool,
}

impl Follower {
    pub fn new(entry: Arc<ProcessEntry>, after: u64, keepalive: Duration) -> Self {
        Self {
            entry,
            after,
            keepalive,
            queue: VecDeque::new(),
            done: false,
        }
    }

    /// The next item; `None` after the exit. Cancel-safe: nothing is lost if the future is
    /// dropped while waiting.
    pub async fn next(&mut self) -> Option<Followed> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            // Register for wake-ups before looking, so nothing lands in between unseen.
            let changed = self.entry.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (gap, events, exit_seq) = self.entry.events_since(self.after);
            if let Some(gap) = gap {
                self.after = gap.to_seq;
                self.queue.push_back(Followed::Gap(gap));
            }
            for event in events {
                self.after = event.seq;
                self.queue.push_back(Followed::Output(event));
            }
            if let Some(exit) = exit_seq {
                if self.after < exit {
                    self.after = exit;
                    self.queue.push_back(Followed::Exit(exit));
                }
                self.done = true;
                continue;
            }
            if !self.queue.is_empty() {
                continue;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep(self.keepalive) => return Some(Followed::Idle),
            }
        }
    }
}
