//! A process's output as numbered events, for live streams that can be resumed.
//!
//! Every chunk a process writes becomes an event with a sequence number (1, 2, ...), which
//! streams send as the SSE event id: a client that reconnects with `Last-Event-ID: n` gets
//! exactly the events after `n`. The log is bounded like the output buffers: events up to
//! half the cap are kept from the start, the rest is a ring of the latest. Events that fall
//! out are a contiguous range that is announced to any reader that would have needed them.

use std::collections::VecDeque;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// A rich result of a context run; `data` is its JSON ([`sandlot_protocol::RichResult`]).
    Result,
}

#[derive(Debug, Clone)]
pub struct OutputEvent {
    pub seq: u64,
    pub stream: Stream,
    pub data: String,
    pub at: SystemTime,
}

/// Events a reader missed because they were dropped to stay within the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub from_seq: u64,
    pub to_seq: u64,
    /// Bytes dropped in the whole gap (not only the part this reader missed).
    pub dropped_bytes: u64,
    /// The events are gone because the process ended and its live log left RAM (its record
    /// still has the output), not because the output cap dropped them.
    pub evicted: bool,
}

#[derive(Debug)]
pub struct EventLog {
    head: Vec<OutputEvent>,
    head_bytes: usize,
    head_cap: usize,
    tail: VecDeque<OutputEvent>,
    tail_bytes: usize,
    tail_cap: usize,
    last_seq: u64,
    /// Seqs `dropped.0 ..= dropped.1` fell out of the log.
    dropped: Option<(u64, u64)>,
    dropped_bytes: u64,
    /// Trailing bytes of an incomplete UTF-8 character, per stream, held for the next chunk.
    pending: [Vec<u8>; 2],
    /// Highest seq any reader has been given; later events may still be merged.
    observed: u64,
}

/// What one event costs beside its text, so a process writing a byte at a time cannot make
/// the log grow past its cap in bookkeeping.
const EVENT_OVERHEAD: usize = 64;
/// Chunks merge into the latest unread event of the same stream up to this size.
const MERGE_LIMIT: usize = 16 * 1024;

impl EventLog {
    pub fn new(cap: usize) -> Self {
        Self {
            head: Vec::new(),
            head_bytes: 0,
            head_cap: cap / 2,
            tail: VecDeque::new(),
            tail_bytes: 0,
            tail_cap: cap - cap / 2,
            last_seq: 0,
            dropped: None,
            dropped_bytes: 0,
            pending: [Vec::new(), Vec::new()],
            observed: 0,
        }
    }

    /// Sequence number of the latest event (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Appends a chunk; a UTF-8 character split across chunks is kept whole.
    pub fn push(&mut self, stream: Stream, bytes: &[u8]) {
        if stream == Stream::Result {
            return self.append(stream, String::from_utf8_lossy(bytes).into_owned());
        }
        let pending = &mut self.pending[stream as usize];
        pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(pending) {
            Ok(_) => pending.len(),
            // An error with no length means the tail is an incomplete character.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => pending.len(),
        };
        if valid == 0 {
            return;
        }
        let rest = pending.split_off(valid);
        let text = String::from_utf8_lossy(pending).into_owned();
        *pending = rest;
        self.append(stream, text);
    }

    /// Flushes held bytes at the end of a stream.
    pub fn finish(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let pending = std::mem::take(&mut self.pending[stream as usize]);
            if !pending.is_empty() {
                self.append(stream, String::from_utf8_lossy(&pending).into_owned());
            }
        }
    }

    fn append(&mut self, stream: Stream, data: String) {
        // A chunk bigger than what is left of the head is split, so the start of the output
        // is kept however large the first reads are (a busy reader may get 64 KiB at once).
        if self.tail.is_empty() {
            let room = self
                .head_cap
                .saturating_sub(self.head_bytes + EVENT_OVERHEAD);
            if data.len() > room && room > 0 {
                let mut cut = room;
                while !data.is_char_boundary(cut) {
                    cut -= 1;
                }
                if cut > 0 {
                    let rest = data[cut..].to_string();
                    let mut first = data;
                    first.truncate(cut);
                    self.append(stream, first);
                    self.append(stream, rest);
                    return;
                }
            }
        }
        // Merge small writes (an unbuffered `print` is two writes) into the latest event while
        // no reader has seen it: fewer, larger events and the same bytes.
        let observed = self.observed;
        let in_tail = !self.tail.is_empty();
        let head_room = self.head_bytes + data.len() <= self.head_cap;
        let latest = if in_tail {
            self.tail.back_mut()
        } else {
            self.head.last_mut()
        };
        if let Some(last) = latest {
            let mergeable = last.seq > observed
                && last.stream == stream
                && stream != Stream::Result
                && last.data.len() + data.len() <= MERGE_LIMIT
                && (in_tail || head_room);
            if mergeable {
                last.data.push_str(&data);
                if in_tail {
                    self.tail_bytes += data.len();
                    self.evict();
                } else {
                    self.head_bytes += data.len();
                }
                return;
            }
        }
        self.last_seq += 1;
        let event = OutputEvent {
            seq: self.last_seq,
            stream,
            data,
            at: SystemTime::now(),
        };
        let cost = event.data.len() + EVENT_OVERHEAD;
        if self.tail.is_empty() && self.head_bytes + cost <= self.head_cap {
            self.head_bytes += cost;
            self.head.push(event);
            return;
        }
        self.tail_bytes += cost;
        self.tail.push_back(event);
        self.evict();
    }

    fn evict(&mut self) {
        while self.tail_bytes > self.tail_cap && self.tail.len() > 1 {
            let old = self.tail.pop_front().expect("non-empty");
            self.tail_bytes -= old.data.len() + EVENT_OVERHEAD;
            self.dropped_bytes += old.data.len() as u64;
            self.dropped = Some(match self.dropped {
                None => (old.seq, old.seq),
                Some((lo, _)) => (lo, old.seq),
            });
        }
    }

    /// Events after `after`, and the gap before them if some were dropped.
    pub fn since(&mut self, after: u64) -> (Option<Gap>, Vec<OutputEvent>) {
        self.observed = self.last_seq;
        let gap = self
            .dropped
            .filter(|(_, hi)| after < *hi)
            .map(|(lo, hi)| Gap {
                from_seq: lo.max(after + 1),
                to_seq: hi,
                dropped_bytes: self.dropped_bytes,
                evicted: false,
            });
        let events = self
            .head
            .iter()
            .chain(self.tail.iter())
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        (gap, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl EventLog {
        fn clone_for_test(&self) -> Self {
            Self {
                head: self.head.clone(),
                head_bytes: self.head_bytes,
                head_cap: self.head_cap,
                tail: self.tail.clone(),
                tail_bytes: self.tail_bytes,
                tail_cap: self.tail_cap,
                last_seq: self.last_seq,
                dropped: self.dropped,
                dropped_bytes: self.dropped_bytes,
                pending: self.pending.clone(),
                observed: self.observed,
            }
        }
    }

    fn texts(events: &[OutputEvent]) -> Vec<(u64, &str)> {
        events.iter().map(|e| (e.seq, e.data.as_str())).collect()
    }

    #[test]
    fn events_are_numbered_and_resumable() {
        let mut log = EventLog::new(1024);
        log.push(Stream::Stdout, b"a");
        log.push(Stream::Stderr, b"b");
        log.push(Stream::Stdout, b"c");
        log.push(Stream::Stdout, b"d");
        let (gap, all) = log.since(0);
        assert_eq!(gap, None);
        assert_eq!(
            texts(&all),
            [(1, "a"), (2, "b"), (3, "cd")],
            "unread writes merge"
        );
        assert_eq!(all[1].stream, Stream::Stderr);
        log.push(Stream::Stdout, b"e");
        assert_eq!(
            texts(&log.since(3).1),
            [(4, "e")],
            "a read event is never changed"
        );
        assert!(log.since(4).1.is_empty());
    }

    #[test]
    fn split_utf8_characters_stay_whole() {
        let mut log = EventLog::new(1024);
        let snow = "☃".as_bytes();
        log.push(Stream::Stdout, &snow[..1]);
        log.push(Stream::Stdout, &snow[1..]);
        log.finish();
        assert_eq!(texts(&log.since(0).1), [(1, "☃")]);
    }

    #[test]
    fn dropped_events_are_announced_to_readers_who_needed_them() {
        let mut log = EventLog::new(2 * (2 * (EVENT_OVERHEAD + 2)));
        for (i, chunk) in ["ab", "cd", "ef", "gh", "ij", "kl"].iter().enumerate() {
            // Alternate streams so nothing merges.
            let stream = if i % 2 == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            log.push(stream, chunk.as_bytes());
        }
        // The head keeps 1 and 2; the tail keeps the latest two: 5 and 6.
        let mut copy = EventLog {
            observed: 0,
            ..log.clone_for_test()
        };
        let (gap, events) = copy.since(0);
        assert_eq!(
            gap,
            Some(Gap {
                from_seq: 3,
                to_seq: 4,
                dropped_bytes: 4,
                evicted: false,
            })
        );
        assert_eq!(texts(&events), [(1, "ab"), (2, "cd"), (5, "ij"), (6, "kl")]);
        let (gap, events) = log.since(4);
        assert_eq!(gap, None);
        assert_eq!(texts(&events), [(5, "ij"), (6, "kl")]);
    }

    #[test]
    fn a_first_chunk_larger_than_the_head_keeps_the_start() {
        let mut log = EventLog::new(1024);
        let big: String = (0..2000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        log.push(Stream::Stdout, big.as_bytes());
        let (gap, events) = log.since(0);
        assert!(
            events[0].data.starts_with("abcdef"),
            "the start stays in the head"
        );
        assert!(log.head_bytes <= log.head_cap);
        // The latest event is never evicted (the tail overshoots by at most one read).
        assert_eq!(gap, None);
        assert_eq!(
            events.iter().map(|e| e.data.as_str()).collect::<String>(),
            big
        );
    }

    #[test]
    fn byte_at_a_time_writers_stay_within_the_cap() {
        let mut log = EventLog::new(4096);
        for i in 0..100_000 {
            log.push(Stream::Stdout, b"x");
            if i % 2 == 0 {
                log.since(log.last_seq()); // a reader keeps up, so nothing merges
            }
        }
        assert!(log.head_bytes + log.tail_bytes <= 4096 + EVENT_OVERHEAD + 1);
        assert!(log.head.len() + log.tail.len() < 100);
    }
}
