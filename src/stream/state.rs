//! One stream's connection: opening it, reading events, and resuming after a drop with
//! `?since=<last seq>`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use gloo_net::http::Method;
use sandlot_protocol as wire;
use web_sys::{AbortSignal, ReadableStreamDefaultReader};

use super::lines::LineFramer;
use super::sse::{decode_frame, SseParser};
use crate::config;
use crate::errors::{ErrorKind, NotFoundHint, SdkError};
use crate::http::{encode, sleep, Call, EventStream, ReadEnd};
use crate::sandbox::Inner;

/// A connection without a byte for this long is taken as lost (the server sends a keepalive
/// after 15 s of silence).
pub(super) const IDLE_MS: u32 = 45_000;
/// Reconnects in a row, without an event in between, before the stream gives up.
pub(super) const MAX_RESUMES: u32 = 5;

/// What `close()` and a pending `next()` share: the flag and the reader to cancel.
#[derive(Default)]
pub(super) struct Shared {
    pub closed: Cell<bool>,
    pub reader: RefCell<Option<ReadableStreamDefaultReader>>,
}

/// One stream: where it is (process, last `seq`), its connection, and events read but not
/// yet handed out.
pub(super) struct StreamState {
    inner: Rc<Inner>,
    /// Present when the caller asked for whole lines.
    pub framer: Option<LineFramer>,
    pub signal: Option<AbortSignal>,
    pub shared: Rc<Shared>,
    /// The request that starts the stream (`POST /execute/stream`), until it has been sent.
    pub first: Option<Call>,
    pub process_id: Option<String>,
    pub last_seq: Option<u64>,
    conn: Option<EventStream>,
    parser: SseParser,
    pending: VecDeque<wire::StreamEvent>,
    pub ended: bool,
    resumes: u32,
}

impl StreamState {
    pub fn new(inner: Rc<Inner>, signal: Option<AbortSignal>) -> Self {
        Self {
            inner,
            framer: None,
            signal,
            shared: Rc::default(),
            first: None,
            process_id: None,
            last_seq: None,
            conn: None,
            parser: SseParser::default(),
            pending: VecDeque::new(),
            ended: false,
            resumes: 0,
        }
    }

    /// Opens (or reopens after the last event seen) the connection.
    pub async fn connect(&mut self) -> Result<(), SdkError> {
        let call = match self.first.take() {
            Some(call) => call,
            None => {
                let id = self.process_id.as_deref().ok_or_else(|| {
                    SdkError::new(ErrorKind::Network, "the stream was lost before it started")
                })?;
                let mut path = format!("/execute/processes/{}/stream", encode(id));
                if let Some(seq) = self.last_seq {
                    path.push_str(&format!("?since={seq}"));
                }
                self.inner
                    .agent(Method::GET, &path)
                    .not_found(NotFoundHint::Process)
            }
        };
        let conn = self
            .inner
            .open_agent_stream(call, self.signal.as_ref())
            .await?;
        *self.shared.reader.borrow_mut() = Some(conn.reader());
        self.conn = Some(conn);
        Ok(())
    }

    pub fn disconnect(&mut self) {
        self.shared.reader.borrow_mut().take();
        // Dropping the connection cancels its body.
        self.conn.take();
        self.parser = SseParser::default();
    }

    /// Remembers where the stream is, for a resume: called for every event as it is read
    /// (reads happen only once everything read before was handed out, or is held by the
    /// line framer), so `since=<last_seq>` never sends an event twice.
    fn note(&mut self, event: &wire::StreamEvent) {
        self.resumes = 0;
        match event {
            wire::StreamEvent::Start(start) => self.process_id = Some(start.process_id.clone()),
            wire::StreamEvent::Stdout(o) | wire::StreamEvent::Stderr(o) => {
                self.last_seq = Some(o.seq);
            }
            wire::StreamEvent::Exit(x) => self.last_seq = Some(x.seq),
            wire::StreamEvent::Truncated(t) => self.last_seq = Some(t.to_seq),
        }
    }

    /// The next event, or `None` once the process has ended (or the stream was closed).
    pub async fn next(&mut self) -> Result<Option<wire::StreamEvent>, SdkError> {
        loop {
            if self.shared.closed.get() {
                self.ended = true;
                self.pending.clear();
            }
            if let Some(event) = self.pending.pop_front() {
                if matches!(event, wire::StreamEvent::Exit(_)) {
                    self.ended = true;
                }
                return Ok(Some(event));
            }
            if self.ended {
                self.disconnect();
                return Ok(None);
            }
            if self.conn.is_none() {
                if let Err(e) = self.connect().await {
                    if !self.resume_allowed(&e) {
                        self.ended = true;
                        return Err(e);
                    }
                    self.pause_before_resume().await?;
                    continue;
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            match conn.read(IDLE_MS).await {
                Ok(bytes) => {
                    for frame in self.parser.push(&bytes) {
                        let Some(event) = decode_frame(&frame) else {
                            continue;
                        };
                        self.note(&event);
                        match &mut self.framer {
                            Some(framer) => self.pending.extend(framer.frame(event)),
                            None => self.pending.push_back(event),
                        }
                    }
                }
                Err(ReadEnd::Aborted(e)) => {
                    self.ended = true;
                    self.disconnect();
                    return Err(e);
                }
                // Closed before the exit event, broken, or silent: resume after the last event.
                Err(end) => {
                    self.disconnect();
                    if self.shared.closed.get() {
                        continue;
                    }
                    let lost = match end {
                        ReadEnd::Lost(e) => e,
                        _ => SdkError::new(
                            ErrorKind::Network,
                            "the output stream ended before the process did",
                        ),
                    };
                    if !self.resume_allowed(&lost) {
                        self.ended = true;
                        return Err(lost);
                    }
                    self.pause_before_resume().await?;
                }
            }
        }
    }

    /// A lost connection is resumed when the process is known and the failure is transient.
    fn resume_allowed(&self, e: &SdkError) -> bool {
        self.process_id.is_some() && self.resumes < MAX_RESUMES && e.is_retryable()
    }

    async fn pause_before_resume(&mut self) -> Result<(), SdkError> {
        self.resumes += 1;
        let wait = config::backoff_ms(self.resumes, None).unwrap_or(config::BACKOFF_MAX_MS);
        sleep(wait, self.signal.as_ref()).await.inspect_err(|_| {
            self.ended = true;
        })
    }
}
