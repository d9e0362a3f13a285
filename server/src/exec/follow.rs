//! Following a process's output: the one loop behind every stream (SSE and WebSocket),
//! live from a running process's event log, or replayed from a finished process's record.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use sandlot_protocol::ExitEvent;

use super::events::{Gap, OutputEvent, Stream};
use super::ProcessEntry;
use crate::node::{Followed, ProcessEvents};
use crate::store::ProcessRecord;
use crate::time::{from_unix_millis, now_rfc3339};

/// Yields a live process's output after a given event, until its exit.
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
            let changed = self.entry.changed();
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
                    self.queue
                        .push_back(Followed::Exit(self.entry.exit_event(exit)));
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

    /// As a stream; `on_drop` runs when the stream is dropped (e.g. to stop the run).
    pub fn into_events(self, on_drop: Option<Box<dyn FnOnce() + Send>>) -> ProcessEvents {
        struct Guard(Option<Box<dyn FnOnce() + Send>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                if let Some(f) = self.0.take() {
                    f();
                }
            }
        }
        Box::pin(futures_util::stream::unfold(
            (self, Guard(on_drop)),
            |(mut follower, guard)| async move {
                let item = follower.next().await?;
                Some((item, (follower, guard)))
            },
        ))
    }
}

/// A finished process's events, from its stored record. The output is whole text, replayed
/// as at most two events (stdout as 1, stderr as 2) before the exit. A reader resuming in
/// the middle of the live numbering cannot be served exactly any more: it is told which
/// events are gone (and the record still has the output), then gets the exit.
pub fn replay(record: &ProcessRecord, after: u64) -> ProcessEvents {
    let exit_seq = record.final_seq.unwrap_or(0).max(3);
    let at = from_unix_millis(record.completed_at_ms.unwrap_or(record.started_at_ms));
    let output = &record.output;
    let mut items = Vec::new();
    if after == 0 && !record.output_evicted {
        for (seq, stream, data) in [
            (1, Stream::Stdout, &output.stdout),
            (2, Stream::Stderr, &output.stderr),
        ] {
            if !data.is_empty() {
                items.push(Followed::Output(OutputEvent {
                    seq,
                    stream,
                    data: data.clone(),
                    at,
                }));
            }
        }
    } else if after + 1 < exit_seq {
        items.push(Followed::Gap(Gap {
            from_seq: after + 1,
            to_seq: exit_seq - 1,
            dropped_bytes: output.stdout_bytes + output.stderr_bytes,
            evicted: true,
        }));
    }
    if after < exit_seq {
        let info = record.clone().into_info();
        items.push(Followed::Exit(ExitEvent {
            status: info.status,
            exit_code: info.exit_code,
            execution_time: info.execution_time,
            error: info.error,
            oom_killed: info.oom_killed,
            timestamp: Some(now_rfc3339()),
            seq: exit_seq,
        }));
    }
    Box::pin(futures_util::stream::iter(items))
}
