//! `lines: true`: output chunks re-framed into whole lines.

use sandlot_protocol as wire;

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
#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

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
            oom_killed: false,
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
}
