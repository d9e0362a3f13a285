//! Server-Sent Events: the body split into events, and each event's JSON read as a wire event
//! (`crate::wire_read`).

use sandlot_protocol as wire;
use wasm_bindgen::prelude::*;

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

/// A stream event as the SDK handles it.
#[derive(Debug, Clone)]
pub(super) enum Event {
    Wire(wire::StreamEvent),
    /// A rich result of a run in a context (`event: result`), already as its JS record: its
    /// formats hold arbitrary JSON, which is kept as parsed rather than decoded.
    Result {
        seq: u64,
        result: JsValue,
    },
}

/// Reads a frame's JSON `data` as a wire event, picking the struct by its `type` (cheaper in
/// wasm than serde's tagged-enum buffering); unknown types are skipped, so a newer server can
/// add some.
pub(super) fn decode_frame(frame: &SseFrame) -> Option<Event> {
    let value = js_sys::JSON::parse(&frame.data).ok()?;
    if frame.event == "result" {
        let seq = js_sys::Reflect::get(&value, &JsValue::from_str("seq"))
            .ok()?
            .as_f64()?;
        return Some(Event::Result {
            seq: seq as u64,
            result: crate::types::rich_result_to_js(&value),
        });
    }
    let kind = js_sys::Reflect::get(&value, &JsValue::from_str("type"))
        .ok()?
        .as_string()?;
    use crate::args::FromJs;
    Some(Event::Wire(match kind.as_str() {
        "start" => wire::StreamEvent::Start(FromJs::read_js(&value).ok()?),
        "stdout" => wire::StreamEvent::Stdout(FromJs::read_js(&value).ok()?),
        "stderr" => wire::StreamEvent::Stderr(FromJs::read_js(&value).ok()?),
        "truncated" => wire::StreamEvent::Truncated(FromJs::read_js(&value).ok()?),
        "exit" => wire::StreamEvent::Exit(FromJs::read_js(&value).ok()?),
        _ => return None,
    }))
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use crate::types::StreamEvent;
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

    #[wasm_bindgen_test]
    fn frames_decode_to_wire_events_and_unknown_types_are_skipped() {
        let out = decode_frame(&frame(
            "stdout",
            r#"{"type":"stdout","data":"x","timestamp":"t","seq":4}"#,
        ));
        let Some(Event::Wire(event)) = out else {
            panic!("not a wire event: {out:?}")
        };
        assert!(matches!(&event, wire::StreamEvent::Stdout(o) if o.seq == 4));
        assert!(decode_frame(&frame("future", r#"{"type":"future"}"#)).is_none());
        assert!(decode_frame(&frame("x", "not json")).is_none());
        let js = tsify::Ts::from_rust(&StreamEvent::from(event))
            .unwrap()
            .js_value();
        let get = |k: &str| js_sys::Reflect::get(&js, &JsValue::from_str(k)).unwrap();
        assert_eq!(get("type").as_string().as_deref(), Some("stdout"));
        assert_eq!(get("seq").as_f64(), Some(4.0));
    }

    #[wasm_bindgen_test]
    fn result_frames_become_result_records() {
        let out = decode_frame(&frame(
            "result",
            r#"{"png":"iVBOR","is_main_result":false,"seq":7,"timestamp":"t"}"#,
        ));
        let Some(Event::Result { seq, result }) = out else {
            panic!("not a result: {out:?}")
        };
        assert_eq!(seq, 7);
        assert_eq!(
            js_sys::JSON::stringify(&result).unwrap(),
            r#"{"png":"iVBOR","isMainResult":false}"#
        );
        assert!(decode_frame(&frame("result", r#"{"png":"x"}"#)).is_none()); // no seq
    }
}
