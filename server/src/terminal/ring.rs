//! A terminal's recent output: numbered chunks in a ring bounded by bytes.
//!
//! The shell never waits for a reader: what it writes is numbered and kept here, and every
//! reader (a WebSocket, an SSE stream, a re-attaching client) walks the ring at its own
//! pace from the last number it saw. A reader that falls further behind than the ring holds
//! is told which numbers it missed (a gap) and goes on from the oldest kept chunk, so a
//! slow client costs no memory beyond the ring itself.

use std::collections::VecDeque;
use std::sync::Arc;

/// One chunk of output and its sequence number (1, 2, ...).
#[derive(Debug, Clone)]
pub struct Chunk {
    pub seq: u64,
    pub data: Arc<[u8]>,
}

#[derive(Debug)]
pub struct OutputRing {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    cap: usize,
    last_seq: u64,
}

impl OutputRing {
    pub fn new(cap: usize) -> Self {
        Self {
            chunks: VecDeque::new(),
            bytes: 0,
            cap: cap.max(1),
            last_seq: 0,
        }
    }

    /// Appends a chunk (never empty) and drops the oldest ones beyond the cap. A single
    /// chunk larger than the cap keeps only its tail.
    pub fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let data = &data[data.len().saturating_sub(self.cap)..];
        self.last_seq += 1;
        self.bytes += data.len();
        self.chunks.push_back(Chunk {
            seq: self.last_seq,
            data: data.into(),
        });
        while self.bytes > self.cap {
            let Some(old) = self.chunks.pop_front() else {
                break;
            };
            self.bytes -= old.data.len();
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Chunks after `after`, and the range of numbers that were dropped before them if the
    /// reader had not seen them.
    pub fn since(&self, after: u64) -> (Option<(u64, u64)>, Vec<Chunk>) {
        let first_kept = self.chunks.front().map_or(self.last_seq + 1, |c| c.seq);
        let gap = (after + 1 < first_kept).then(|| (after + 1, first_kept - 1));
        let skip = (after + 1).saturating_sub(first_kept) as usize;
        (gap, self.chunks.iter().skip(skip).cloned().collect())
    }
}

/// How much of `buf` ends on a UTF-8 character boundary: an incomplete multi-byte sequence
/// at the very end (at most 3 bytes) is held back for the next read, so text never splits
/// a character between two chunks. Invalid bytes are not held back (they are not text).
pub fn utf8_complete_len(buf: &[u8]) -> usize {
    let n = buf.len();
    for back in 1..=3.min(n) {
        let b = buf[n - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return n, // ASCII or invalid: complete as it is
        };
        return if needed > back { n - back } else { n };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_resumes_after_what_it_saw_and_learns_what_it_missed() {
        let mut ring = OutputRing::new(10);
        ring.push(b"aaaa");
        ring.push(b"bbbb");
        let (gap, chunks) = ring.since(0);
        assert_eq!(gap, None);
        assert_eq!(chunks.len(), 2);
        let (_, chunks) = ring.since(1);
        assert_eq!(&*chunks[0].data, b"bbbb");
        ring.push(b"cccc"); // 12 bytes > 10: chunk 1 goes
        let (gap, chunks) = ring.since(0);
        assert_eq!(gap, Some((1, 1)));
        assert_eq!(chunks.iter().map(|c| c.seq).collect::<Vec<_>>(), [2, 3]);
        let (gap, chunks) = ring.since(3);
        assert_eq!((gap, chunks.len()), (None, 0));
        ring.push(&[b'x'; 25]);
        let (gap, chunks) = ring.since(1);
        assert_eq!(gap, Some((2, 3)));
        assert_eq!(
            chunks[0].data.len(),
            10,
            "an oversized chunk keeps its tail"
        );
        assert_eq!(ring.last_seq(), 4);
    }

    #[test]
    fn an_incomplete_character_at_the_end_waits_for_the_next_read() {
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(utf8_complete_len(b"abc"), 3);
        assert_eq!(utf8_complete_len(&[b'a', euro[0]]), 1);
        assert_eq!(utf8_complete_len(&[b'a', euro[0], euro[1]]), 1);
        assert_eq!(utf8_complete_len(&[b'a', euro[0], euro[1], euro[2]]), 4);
        assert_eq!(utf8_complete_len(&[0xff, 0xfe]), 2, "invalid bytes pass");
        assert_eq!(utf8_complete_len(&[]), 0);
    }
}
