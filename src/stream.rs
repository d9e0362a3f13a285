//! Live process output: Server-Sent Events read with `fetch` and handed to JS as an async
//! iterable (`for await (const event of stream)`).
//!
//! Not `EventSource` (it cannot send a bearer token, and Node 20 has none) nor WebSocket
//! (absent from Node 20): a `fetch` body read chunk by chunk works in every runtime. The
//! stream survives a dropped or silent connection: every output event carries its sequence
//! number, so the SDK reconnects with `?since=<last seq>` and the server sends exactly the
//! events after it, nothing twice and nothing missed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use gloo_net::http::Method;
use sandlot_protocol as wire;
use tsify::Ts;
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, ReadableStreamDefaultReader};

use crate::config;
use crate::errors::{ErrorKind, NotFoundHint, SdkError};
use crate::http::{signal_of, sleep, Call, EventStream, ReadEnd};
use crate::sandbox::{arg, encode, out, Inner, Sandbox};
use crate::types::{RunCodeStreamOptions, StreamEvent, StreamOptions};

/// A connection without a byte for this long is taken as lost (the server sends a keepalive
/// after 15 s of silence).
const IDLE_MS: u32 = 45_000;
/// Reconnects in a row, without an event in between, before the stream gives up.
const MAX_RESUMES: u32 = 5;

/// One server-sent event (only the fields Sandlot uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    pub event: String,
    pub data: String,
}

/// Splits an event-stream body into events. Bytes are buffered until a whole line is in, and
/// a line break is never inside a UTF-8 character, so text is never cut mid-character.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: String,
    data: Option<String>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseFrame> {
        self.pending.extend_from_slice(chunk);
        let mut frames = Vec::new();
        let mut start = 0;
        while let Some(len) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.pending[start..start + len];
            start += len + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let line = String::from_utf8_lossy(line);
            if line.is_empty() {
                // A blank line ends the event; comments and `retry:` alone make none.
                if let Some(data) = self.data.take() {
                    frames.push(SseFrame {
                        event: std::mem::take(&mut self.event),
                        data,
                    });
                }
                self.event.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.event = value.to_string(),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                _ => {}
            }
        }
        self.pending.drain(..start);
        frames
    }
}

/// Reads a frame's JSON `data` as a wire event, picking the struct by its `type` (cheaper in
/// wasm than serde's tagged-enum buffering); unknown types are skipped, so a newer server can
/// add some.
fn decode_frame(frame: &SseFrame) -> Option<wire::StreamEvent> {
    let value = js_sys::JSON::parse(&frame.data).ok()?;
    let kind = js_sys::Reflect::get(&value, &JsValue::from_str("type"))
        .ok()?
        .as_string()?;
    use serde_wasm_bindgen::from_value as read;
    Some(match kind.as_str() {
        "start" => wire::StreamEvent::Start(read(value).ok()?),
        "stdout" => wire::StreamEvent::Stdout(read(value).ok()?),
        "stderr" => wire::StreamEvent::Stderr(read(value).ok()?),
        "truncated" => wire::StreamEvent::Truncated(read(value).ok()?),
        "exit" => wire::StreamEvent::Exit(read(value).ok()?),
        _ => return None,
    })
}

/// What `close()` and a pending `next()` share: the flag and the reader to cancel.
#[derive(Default)]
struct Shared {
    closed: Cell<bool>,
    reader: RefCell<Option<ReadableStreamDefaultReader>>,
}

/// `StreamEvent::Stdout` or `StreamEvent::Stderr`.
type MakeOutput = fn(wire::OutputEvent) -> wire::StreamEvent;

/// Re-frames output chunks into whole lines, per stream, across events and reconnects.
#[derive(Debug, Default)]
pub struct LineFramer {
    stdout: String,
    stderr: String,
}

impl LineFramer {
    /// Splits an output event into one event per completed line; other events pass through,
    /// except that `truncated` and `exit` first flush what is left of each stream.
    pub fn frame(&mut self, event: wire::StreamEvent) -> Vec<wire::StreamEvent> {
        match event {
            wire::StreamEvent::Stdout(o) => {
                Self::lines(&mut self.stdout, o, wire::StreamEvent::Stdout)
            }
            wire::StreamEvent::Stderr(o) => {
                Self::lines(&mut self.stderr, o, wire::StreamEvent::Stderr)
            }
            // A gap or the end: what is left of a line must not be glued to what follows.
            wire::StreamEvent::Exit(wire::ExitEvent { seq, .. })
            | wire::StreamEvent::Truncated(wire::TruncatedEvent { to_seq: seq, .. }) => {
                let mut out = Vec::new();
                let streams: [(&mut String, MakeOutput); 2] = [
                    (&mut self.stdout, wire::StreamEvent::Stdout),
                    (&mut self.stderr, wire::StreamEvent::Stderr),
                ];
                for (rest, make) in streams {
                    if !rest.is_empty() {
                        out.push(make(wire::OutputEvent {
                            data: std::mem::take(rest),
                            seq,
                            timestamp: None,
                        }));
                    }
                }
                out.push(event);
                out
            }
            other => vec![other],
        }
    }

    fn lines(
        rest: &mut String,
        chunk: wire::OutputEvent,
        make: MakeOutput,
    ) -> Vec<wire::StreamEvent> {
        rest.push_str(&chunk.data);
        let mut out = Vec::new();
        while let Some(end) = rest.find('\n') {
            out.push(make(wire::OutputEvent {
                data: rest.drain(..=end).collect(),
                seq: chunk.seq,
                timestamp: chunk.timestamp.clone(),
            }));
        }
        out
    }
}

struct StreamState {
    inner: Rc<Inner>,
    /// Present when the caller asked for whole lines.
    framer: Option<LineFramer>,
    signal: Option<AbortSignal>,
    shared: Rc<Shared>,
    /// The request that starts the stream (`POST /execute/stream`), until it has been sent.
    first: Option<Call>,
    process_id: Option<String>,
    last_seq: Option<u64>,
    conn: Option<EventStream>,
    parser: SseParser,
    pending: VecDeque<wire::StreamEvent>,
    ended: bool,
    resumes: u32,
}

impl StreamState {
    fn new(inner: Rc<Inner>, signal: Option<AbortSignal>) -> Self {
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
    async fn connect(&mut self) -> Result<(), SdkError> {
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

    fn disconnect(&mut self) {
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
    async fn next(&mut self) -> Result<Option<wire::StreamEvent>, SdkError> {
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

type SharedState = Rc<RefCell<Option<StreamState>>>;

/// Live output of one process: `for await (const event of stream) { ... }`. Events are
/// `start` (runCodeStream only), `stdout`, `stderr`, `truncated`, and a final `exit`, after
/// which the iteration ends. Leaving the loop early (or `close()`) closes the connection; the
/// process itself keeps running.
#[wasm_bindgen]
pub struct ProcessStream {
    state: SharedState,
    shared: Rc<Shared>,
}

/// The iterator behind `for await` over a `ProcessStream`.
#[wasm_bindgen]
pub struct ProcessStreamIterator {
    state: SharedState,
    shared: Rc<Shared>,
}

fn iter_result(value: &JsValue, done: bool) -> JsValue {
    let result = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&result, &JsValue::from_str("value"), value);
    let _ = js_sys::Reflect::set(&result, &JsValue::from_str("done"), &JsValue::from(done));
    result.into()
}

/// Stops the stream: a pending read ends at once, later `next()` calls are done.
async fn close(state: &SharedState, shared: &Shared) {
    shared.closed.set(true);
    let reader = shared.reader.borrow().clone();
    if let Some(reader) = reader {
        let _ = wasm_bindgen_futures::JsFuture::from(reader.cancel()).await;
    }
    // When no next() is running the state is here; release its connection too.
    let idle = state.borrow_mut().take();
    if let Some(mut s) = idle {
        s.ended = true;
        s.disconnect();
        *state.borrow_mut() = Some(s);
    }
}

#[wasm_bindgen]
impl ProcessStream {
    #[wasm_bindgen(js_name = "[Symbol.asyncIterator]")]
    pub fn iterator(&self) -> ProcessStreamIterator {
        ProcessStreamIterator {
            state: self.state.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Closes the connection. The process keeps running; `streamProcess` can follow it again.
    pub async fn close(&self) {
        close(&self.state, &self.shared).await;
    }
}

#[wasm_bindgen]
impl ProcessStreamIterator {
    #[wasm_bindgen(unchecked_return_type = "IteratorResult<StreamEvent, undefined>")]
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
        match result? {
            Some(event) => Ok(iter_result(&out(&StreamEvent::from(event))?.into(), false)),
            None => Ok(iter_result(&JsValue::UNDEFINED, true)),
        }
    }

    /// Called by `for await` when the loop is left early: closes the connection.
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "IteratorResult<StreamEvent, undefined>"
    )]
    pub async fn return_(&self) -> JsValue {
        close(&self.state, &self.shared).await;
        iter_result(&JsValue::UNDEFINED, true)
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str, error: &JsValue);
}

/// The output callbacks of `runCodeBackground`.
pub(crate) struct OutputCallbacks {
    on_stdout: Option<js_sys::Function>,
    on_stderr: Option<js_sys::Function>,
    on_exit: Option<js_sys::Function>,
}

fn callback(value: &JsValue, name: &str) -> Result<Option<js_sys::Function>, SdkError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .clone()
        .dyn_into::<js_sys::Function>()
        .map(Some)
        .map_err(|_| SdkError::invalid_argument(format!("{name} must be a function")))
}

impl OutputCallbacks {
    /// The callbacks given, checked to be functions; `None` when there are none.
    pub fn new(
        on_stdout: &JsValue,
        on_stderr: &JsValue,
        on_exit: &JsValue,
    ) -> Result<Option<Self>, SdkError> {
        let callbacks = Self {
            on_stdout: callback(on_stdout, "onStdout")?,
            on_stderr: callback(on_stderr, "onStderr")?,
            on_exit: callback(on_exit, "onExit")?,
        };
        let any = callbacks.on_stdout.is_some()
            || callbacks.on_stderr.is_some()
            || callbacks.on_exit.is_some();
        Ok(any.then_some(callbacks))
    }

    /// Follows the process's output stream in the background (resuming after a dropped
    /// connection, like `streamProcess`) and calls the callbacks in order, until the process
    /// ends or `signal` fires. A callback that throws is reported once with `console.error`;
    /// a stream that cannot be resumed is reported the same way, unless the signal stopped it
    /// or the process (or sandbox) is gone.
    pub fn follow(
        self,
        inner: Rc<Inner>,
        process_id: String,
        lines: bool,
        signal: Option<AbortSignal>,
    ) {
        let mut state = StreamState::new(inner, signal);
        state.framer = lines.then(LineFramer::default);
        state.process_id = Some(process_id.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let mut threw = false;
            loop {
                let event = match state.next().await {
                    Ok(Some(event)) => event,
                    Ok(None) => return,
                    Err(e) => {
                        let stopped = state.signal.as_ref().is_some_and(AbortSignal::aborted);
                        let gone = matches!(
                            e.kind,
                            ErrorKind::Aborted
                                | ErrorKind::ProcessNotFound
                                | ErrorKind::SandboxNotFound
                        );
                        if !stopped && !gone {
                            console_error(
                                &format!(
                                    "sandlot: lost the output stream of process {process_id}:"
                                ),
                                &e.into(),
                            );
                        }
                        return;
                    }
                };
                let (f, arg) = match event {
                    wire::StreamEvent::Stdout(o) => (&self.on_stdout, JsValue::from_str(&o.data)),
                    wire::StreamEvent::Stderr(o) => (&self.on_stderr, JsValue::from_str(&o.data)),
                    exit @ wire::StreamEvent::Exit(_) => match out(&StreamEvent::from(exit)) {
                        Ok(ts) => (&self.on_exit, ts.into()),
                        Err(_) => continue,
                    },
                    _ => continue,
                };
                let Some(f) = f else { continue };
                if let Err(thrown) = f.call1(&JsValue::UNDEFINED, &arg) {
                    if !threw {
                        threw = true;
                        console_error(
                            &format!(
                                "sandlot: an output callback of process {process_id} threw \
                                 (reported once; the other output is still delivered):"
                            ),
                            &thrown,
                        );
                    }
                }
            }
        });
    }
}

impl Sandbox {
    async fn open_stream(&self, mut state: StreamState) -> Result<ProcessStream, SdkError> {
        state.connect().await?;
        let shared = state.shared.clone();
        Ok(ProcessStream {
            state: Rc::new(RefCell::new(Some(state))),
            shared,
        })
    }
}

#[wasm_bindgen]
impl Sandbox {
    /// Follows a process's output live, from the start of what the server kept (or after
    /// `since`), until it ends. Works for running and for ended processes.
    #[wasm_bindgen(js_name = streamProcess)]
    pub async fn stream_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<StreamOptions>>,
    ) -> Result<ProcessStream, JsValue> {
        let id = process_id
            .as_string()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SdkError::invalid_argument("processId must be a non-empty string"))?;
        let opts = arg(options, "streamProcess options")?;
        let mut state = StreamState::new(self.inner.clone(), signal_of(&opts.signal)?);
        state.framer = opts.lines.unwrap_or(false).then(LineFramer::default);
        state.process_id = Some(id);
        state.last_seq = opts.since;
        Ok(self.open_stream(state).await?)
    }

    /// Starts code (recorded like a background process) and streams its output: the first
    /// event is `start` with its `processId`, the last is `exit`. Default `timeout` 60 s.
    #[wasm_bindgen(js_name = runCodeStream)]
    pub async fn run_code_stream(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] code: JsValue,
        options: Option<Ts<RunCodeStreamOptions>>,
    ) -> Result<ProcessStream, JsValue> {
        let code = code
            .as_string()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SdkError::invalid_argument("code must be a non-empty string"))?;
        let opts = arg(options, "runCodeStream options")?;
        let mut state = StreamState::new(self.inner.clone(), signal_of(&opts.signal)?);
        state.framer = opts.lines.unwrap_or(false).then(LineFramer::default);
        state.first = Some(
            self.inner
                .agent(Method::POST, "/execute/stream")
                .json(&opts.to_wire(code))?
                .timeout_ms(config::BACKGROUND_HTTP_TIMEOUT_MS),
        );
        Ok(self.open_stream(state).await?)
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn frame(event: &str, data: &str) -> SseFrame {
        SseFrame {
            event: event.into(),
            data: data.into(),
        }
    }

    #[wasm_bindgen_test]
    fn parser_splits_events_and_skips_comments_and_retry() {
        let mut p = SseParser::default();
        let frames =
            p.push(b"retry: 1000\n\nid: 1\nevent: stdout\ndata: {\"a\":1}\n\n: keepalive\n\n");
        assert_eq!(frames, vec![frame("stdout", "{\"a\":1}")]);
    }

    #[wasm_bindgen_test]
    fn parser_joins_chunks_split_anywhere_even_inside_a_character() {
        let text = "event: stdout\r\ndata: h\u{e9}llo\r\n\r\n".as_bytes();
        let mut p = SseParser::default();
        let mut frames = Vec::new();
        for byte in text {
            frames.extend(p.push(std::slice::from_ref(byte)));
        }
        assert_eq!(frames, vec![frame("stdout", "h\u{e9}llo")]);
    }

    #[wasm_bindgen_test]
    fn parser_joins_multiple_data_lines() {
        let mut p = SseParser::default();
        assert_eq!(p.push(b"data: a\ndata: b\n\n"), vec![frame("", "a\nb")]);
        assert!(p.push(b"data: partial").is_empty());
        assert_eq!(p.push(b"\n\n"), vec![frame("", "partial")]);
    }

    fn out(data: &str, seq: u64) -> wire::StreamEvent {
        wire::StreamEvent::Stdout(wire::OutputEvent {
            data: data.into(),
            seq,
            timestamp: None,
        })
    }

    fn data(events: &[wire::StreamEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                wire::StreamEvent::Stdout(o) => Some(format!("out:{}", o.data)),
                wire::StreamEvent::Stderr(o) => Some(format!("err:{}", o.data)),
                wire::StreamEvent::Exit(_) => Some("exit".into()),
                _ => None,
            })
            .collect()
    }

    #[wasm_bindgen_test]
    fn line_framer_joins_split_lines_and_flushes_the_rest_before_exit() {
        let mut f = LineFramer::default();
        let mut got = Vec::new();
        got.extend(f.frame(out("progress 1", 1)));
        got.extend(f.frame(out("\nprogress 2\npart", 2)));
        got.extend(f.frame(wire::StreamEvent::Stderr(wire::OutputEvent {
            data: "warn\n".into(),
            seq: 3,
            timestamp: None,
        })));
        got.extend(f.frame(wire::StreamEvent::Exit(wire::ExitEvent {
            status: wire::ProcessStatus::Completed,
            exit_code: Some(0),
            execution_time: None,
            error: None,
            timestamp: None,
            seq: 4,
        })));
        assert_eq!(
            data(&got),
            [
                "out:progress 1\n",
                "out:progress 2\n",
                "err:warn\n",
                "out:part",
                "exit"
            ]
        );
    }

    #[wasm_bindgen_test]
    fn line_framer_flushes_a_partial_line_before_a_gap() {
        let mut f = LineFramer::default();
        let mut got = f.frame(out("before the ga", 1));
        got.extend(f.frame(wire::StreamEvent::Truncated(wire::TruncatedEvent {
            from_seq: 2,
            to_seq: 5,
            dropped_bytes: 10,
            message: None,
        })));
        got.extend(f.frame(out("after\n", 6)));
        assert_eq!(data(&got), ["out:before the ga", "out:after\n"]);
        assert!(matches!(got[1], wire::StreamEvent::Truncated(_)));
    }

    #[wasm_bindgen_test]
    fn frames_decode_to_wire_events_and_unknown_types_are_skipped() {
        let out = decode_frame(&frame(
            "stdout",
            r#"{"type":"stdout","data":"x","timestamp":"t","seq":4}"#,
        ));
        assert!(matches!(&out, Some(wire::StreamEvent::Stdout(o)) if o.seq == 4));
        assert_eq!(decode_frame(&frame("future", r#"{"type":"future"}"#)), None);
        assert_eq!(decode_frame(&frame("x", "not json")), None);
        let js = tsify::Ts::from_rust(&StreamEvent::from(out.unwrap()))
            .unwrap()
            .js_value();
        let get = |k: &str| js_sys::Reflect::get(&js, &JsValue::from_str(k)).unwrap();
        assert_eq!(get("type").as_string().as_deref(), Some("stdout"));
        assert_eq!(get("seq").as_f64(), Some(4.0));
    }

    #[wasm_bindgen_test]
    fn output_callbacks_must_be_functions_and_none_means_no_follow() {
        let f: JsValue = js_sys::Function::new_no_args("").into();
        let none = JsValue::UNDEFINED;
        assert!(OutputCallbacks::new(&none, &JsValue::NULL, &none)
            .unwrap()
            .is_none());
        let some = OutputCallbacks::new(&none, &none, &f).unwrap().unwrap();
        assert!(some.on_exit.is_some() && some.on_stdout.is_none());
        let e = OutputCallbacks::new(&f, &JsValue::from_str("x"), &none)
            .err()
            .unwrap();
        assert_eq!(e.code, "INVALID_ARGUMENT");
        assert!(e.message.contains("onStderr"), "{}", e.message);
    }
}
