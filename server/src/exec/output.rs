//! Bounded output buffers: a process that prints a gigabyte costs no more than the cap.
//!
//! The first half of the cap keeps the head of the stream, the second half is a ring holding
//! its tail; what falls in between is counted, never silently lost: readers get a
//! `truncated` flag, the total byte count, and a marker line where the gap is.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct OutputBuffer {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl OutputBuffer {
    pub fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap: cap - head_cap,
            total: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.head.len() < self.head_cap {
            let take = data.len().min(self.head_cap - self.head.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(data);
    }

    /// Bytes written so far, including dropped ones.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    pub fn truncated(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// The kept text (lossy UTF-8), with a marker where bytes were dropped.
    pub fn text(&self) -> String {
        let mut bytes = self.head.clone();
        if self.truncated() {
            let dropped = self.total - (self.head.len() + self.tail.len()) as u64;
            bytes.extend_from_slice(
                format!("\n[sandlot: {dropped} bytes of output dropped]\n").as_bytes(),
            );
        }
        let (a, b) = self.tail.as_slices();
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut b = OutputBuffer::new(16);
        b.push(b"hello ");
        b.push(b"world");
        assert_eq!(b.text(), "hello world");
        assert!(!b.truncated());
        assert_eq!(b.total_bytes(), 11);
    }

    #[test]
    fn overflow_keeps_head_and_tail_and_says_what_was_dropped() {
        let mut b = OutputBuffer::new(8);
        for chunk in [&b"abcdef"[..], b"ghijkl", b"mnopqr"] {
            b.push(chunk);
        }
        assert!(b.truncated());
        assert_eq!(b.total_bytes(), 18);
        assert_eq!(
            b.text(),
            "abcd\n[sandlot: 10 bytes of output dropped]\nopqr"
        );
    }

    #[test]
    fn one_huge_chunk_stays_within_the_cap() {
        let mut b = OutputBuffer::new(1024);
        b.push(&vec![b'x'; 10 * 1024 * 1024]);
        assert!(b.head.len() + b.tail.len() <= 1024);
        assert_eq!(b.total_bytes(), 10 * 1024 * 1024);
    }
}
