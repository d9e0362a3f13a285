//! A generic agent event stream for the JS façade: a terminal's output and a file watch.
//!
//! Unlike a process stream, its events are not mapped in Rust: each `data:` line is handed to
//! JS as `JSON.parse` makes it, and the façade (`surface.js`) names them (one shared camelCase
//! rule, no serde code per event type in the wasm). What this layer owns is what a stream
//! needs to be reliable: the connection, the idle watchdog, the caller's signal, and for
//! terminals the resume after a dropped connection with `?since=<last seq>`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use gloo_net::http::Method;
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::sse::SseParser;
use super::state::{Shared, IDLE_MS, MAX_RESUMES};
use super::{close_reader, iter_result};
use crate::config;
use crate::errors::{ErrorKind, NotFoundHint, SdkError};
use crate::http::{sleep, EventStream, ReadEnd};
use crate::sandbox::Inner;

/// One feed: where it reads from, how far it got, and events read but not yet handed out.
pub(crate) struct FeedState {
    inner: Rc<Inner>,
    path: String,
    /// Resumable feeds number their events with `seq` and end with an `exit` event.
    resumable: bool,
    signal: Option<AbortSignal>,
    shared: Rc<Shared>,
    last_seq: Option<u64>,
    conn: Option<EventStream>,
    parser: SseParser,
    pending: VecDeque<JsValue>,
    ended: bool,
    resumes: u32,
}

impl FeedState {
    async fn connect(&mut self) -> Result<(), SdkError> {
        let mut path = self.path.clone();
        if let Some(seq) = self.last_seq {
            let sep = if path.contains('?') { '&' } else { '?' };
            path.push_str(&format!("{sep}since={seq}"));
        }
        let call = self
            .inner
            .agent(Method::GET, &path)
            .not_found(NotFoundHint::Generic);
        let conn = self
            .inner
            .open_agent_stream(call, self.signal.as_ref())
            .await?;
        *self.shared.reader.borrow_mut() = Some(conn.reader());
        self.conn = Some(conn);
        Ok(())
    }

    fn disconnect(&mut self) {
        self.shared.reader.borrow_mut().take();
        self.conn.take();
        self.parser = SseParser::default();
    }

    /// Queues the events of a chunk, noting the last `seq` and whether `exit` came.
    fn take(&mut self, bytes: &[u8]) {
        for frame in self.parser.push(bytes) {
            let Ok(value) = js_sys::JSON::parse(&frame.data) else {
                continue;
            };
            let get = |key: &str| js_sys::Reflect::get(&value, &JsValue::from_str(key)).ok();
            if let Some(seq) = get("seq").and_then(|v| v.as_f64()) {
                // An integer; as u64, since formatting an f64 would pull float printing in.
                self.last_seq = Some(seq as u64);
                self.resumes = 0;
            }
            if self.resumable && get("type").and_then(|v| v.as_string()).as_deref() == Some("exit")
            {
                self.ended = true;
            }
            self.pending.push_back(value);
        }
    }

    /// The next event, or `None` once the feed has ended (or was closed).
    async fn next(&mut self) -> Result<Option<JsValue>, SdkError> {
        loop {
            if self.shared.closed.get() {
                self.ended = true;
                self.pending.clear();
            }
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                self.disconnect();
                return Ok(None);
            }
            if self.conn.is_none() {
                if let Err(e) = self.connect().await {
                    self.give_up_unless_resumable(e).await?;
                    continue;
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            match conn.read(IDLE_MS).await {
                Ok(bytes) => self.take(&bytes),
                Err(ReadEnd::Aborted(e)) => {
                    self.ended = true;
                    self.disconnect();
                    return Err(e);
                }
                Err(ReadEnd::Closed) if !self.resumable => {
                    self.ended = true;
                }
                Err(end) => {
                    self.disconnect();
                    if self.shared.closed.get() {
                        continue;
                    }
                    let lost = match end {
                        ReadEnd::Lost(e) => e,
                        _ => SdkError::new(
                            ErrorKind::Network,
                            "the event stream ended before its exit event",
                        ),
                    };
                    self.give_up_unless_resumable(lost).await?;
                }
            }
        }
    }

    /// After a failed connection: waits and lets the loop reconnect when the feed can resume
    /// and the failure is transient, else ends the feed with the error.
    async fn give_up_unless_resumable(&mut self, e: SdkError) -> Result<(), SdkError> {
        if !(self.resumable && self.resumes < MAX_RESUMES && e.is_retryable()) {
            self.ended = true;
            return Err(e);
        }
        self.resumes += 1;
        let wait = config::backoff_ms(self.resumes, None).unwrap_or(config::BACKOFF_MAX_MS);
        sleep(wait, self.signal.as_ref()).await.inspect_err(|_| {
            self.ended = true;
        })
    }
}

/// An open agent event stream, read by the façade with `next()` until `done`; `close()`
/// ends it (a pending `next()` resolves `done`).
#[wasm_bindgen(skip_typescript)]
pub struct EventFeed {
    state: Rc<RefCell<Option<FeedState>>>,
    shared: Rc<Shared>,
}

#[wasm_bindgen]
impl EventFeed {
    pub async fn next(&self) -> Result<JsValue, JsValue> {
        let taken = self.state.borrow_mut().take();
        let mut state = taken.ok_or_else(|| {
            SdkError::new(
                ErrorKind::Sandlot,
                "next() called while an earlier next() is still pending",
            )
            .with_code("STREAM_BUSY")
        })?;
        let result = state.next().await;
        *self.state.borrow_mut() = Some(state);
        Ok(match result? {
            Some(event) => iter_result(&event, false),
            None => iter_result(&JsValue::UNDEFINED, true),
        })
    }

    pub async fn close(&self) {
        close_reader(&self.shared).await;
        let idle = self.state.borrow_mut().take();
        if let Some(mut s) = idle {
            s.ended = true;
            s.disconnect();
            *self.state.borrow_mut() = Some(s);
        }
    }
}

impl EventFeed {
    /// Opens the feed at `path` (an agent path, query included); resolves once the server has
    /// answered.
    pub(crate) async fn open(
        inner: Rc<Inner>,
        path: String,
        resumable: bool,
        since: Option<u64>,
        signal: Option<AbortSignal>,
    ) -> Result<EventFeed, SdkError> {
        let shared = Rc::<Shared>::default();
        let mut state = FeedState {
            inner,
            path,
            resumable,
            signal,
            shared: shared.clone(),
            last_seq: since,
            conn: None,
            parser: SseParser::default(),
            pending: VecDeque::new(),
            ended: false,
            resumes: 0,
        };
        state.connect().await?;
        Ok(EventFeed {
            state: Rc::new(RefCell::new(Some(state))),
            shared,
        })
    }
}
