//! The reply channel of a context's driver: JSON lines, each bounded.

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// JSON lines from the reply pipe, each at most `cap` bytes (longer ones are skipped and
/// reported as an empty line, which does not parse).
pub struct Replies {
    rx: pipe::Receiver,
    buf: Vec<u8>,
    cap: usize,
    skipping: bool,
    eof: bool,
}

impl Replies {
    pub fn new(rx: pipe::Receiver, cap: usize) -> Self {
        Self {
            rx,
            buf: Vec::new(),
            cap,
            skipping: false,
            eof: false,
        }
    }

    /// The next line; `None` once the pipe has closed. Cancel-safe.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if std::mem::take(&mut self.skipping) {
                    return Some(Vec::new());
                }
                return Some(line);
            }
            if self.buf.len() > self.cap {
                self.buf.clear();
                self.skipping = true;
            }
            if self.eof {
                return None;
            }
            match self.rx.read(&mut chunk).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}
