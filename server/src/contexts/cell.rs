//! One run in a context (a cell): wait for the context's interpreter, restart it if it
//! died (and say so instead of running), run the code, and turn how the cell ended into
//! the process entry's final state and an `execution_error`.

use std::sync::Arc;

use sandlot_protocol::{run_errors, ContextState, ExecutionError, RichResult};

use super::manager::start;
use super::process::CellEnd;
use super::zygote::Zygote;
use super::Context;
use crate::exec::events::Stream;
use crate::exec::launch::Launch;
use crate::exec::{ProcessEntry, StopReason};

/// What a cell produced besides its output (which is in its entry).
#[derive(Debug, Default)]
pub struct CellOutcome {
    pub context_id: String,
    pub results: Vec<RichResult>,
    pub error: Option<ExecutionError>,
    pub execution_count: Option<u64>,
}

/// A cell's run, checked.
pub(super) struct Job {
    pub(super) launch: Launch,
    pub(super) zygote: Option<Arc<Zygote>>,
    pub(super) result_cap: usize,
    pub(super) code: String,
    pub(super) env: std::collections::BTreeMap<String, String>,
    pub(super) cwd: Option<String>,
}

fn restarted(context: &Context, reason: &str) -> ExecutionError {
    ExecutionError {
        name: run_errors::CONTEXT_RESTARTED.into(),
        value: format!(
            "the {} context {} was restarted because {reason}; its variables, imports and \
             working directory are reset, and this code was not run: run it again",
            context.language, context.id
        ),
        traceback: String::new(),
    }
}

/// The cell's task: waits for the context, makes sure it has a live interpreter, runs.
pub(super) async fn run_in(
    context: Arc<Context>,
    entry: Arc<ProcessEntry>,
    job: Job,
) -> CellOutcome {
    let mut outcome = CellOutcome {
        context_id: context.id.clone(),
        ..Default::default()
    };
    let mut slot = context.slot.lock().await;
    if entry.stop_reason().is_some() {
        entry.finish_cell(130, None, None);
        return outcome;
    }
    entry.mark_running(None);
    // Died between runs: deliberately (restart quietly) or not (restart and say so).
    if let Some(p) = slot.process.as_mut() {
        if let Some((code, oom)) = p.has_exited() {
            let reason = p.death_reason(code, oom);
            let mut dead = slot.process.take().expect("checked");
            dead.kill().await;
            if oom || !(0..128).contains(&code) {
                slot.died = Some(reason);
            }
        }
    }
    if let Some(reason) = slot.died.take() {
        let error = restarted(&context, &reason);
        let started = start(
            &context,
            &mut slot,
            job.launch.clone(),
            job.result_cap,
            job.zygote.as_deref(),
            None,
        )
        .await;
        let mut message = format!("{}: {}\n", error.name, error.value);
        if let Err(e) = started {
            message.push_str(&format!("the new interpreter did not start either: {e}\n"));
        }
        entry.push_output(Stream::Stderr, message.as_bytes());
        entry.finish_cell(1, Some(error.value.clone()), None);
        outcome.error = Some(error);
        return outcome;
    }
    if slot.process.is_none() {
        if let Err(e) = start(
            &context,
            &mut slot,
            job.launch.clone(),
            job.result_cap,
            job.zygote.as_deref(),
            None,
        )
        .await
        {
            entry.fail_to_start(e.clone());
            outcome.error = Some(ExecutionError {
                name: run_errors::FAILED.into(),
                value: e,
                traceback: String::new(),
            });
            return outcome;
        }
    }
    context.set_current(Some(entry.clone()));
    context.set_state(ContextState::Busy);
    {
        let mut a = context.activity();
        a.executions += 1;
        outcome.execution_count = Some(a.executions);
    }
    let process = slot.process.as_mut().expect("started above");
    let end = process
        .run_cell(
            &entry,
            context.language,
            &job.code,
            &job.env,
            job.cwd.as_deref(),
        )
        .await;
    match end {
        CellEnd::Done {
            exit_code,
            error,
            results,
        } => {
            outcome.results = results;
            let summary = error.as_ref().map(|e| format!("{}: {}", e.name, e.value));
            entry.finish_cell(exit_code, summary, None);
            outcome.error = match entry.stop_reason() {
                // The interrupt's KeyboardInterrupt (or the like) is ours, not the code's.
                Some(StopReason::Timeout) => Some(ExecutionError {
                    name: run_errors::TIMEOUT.into(),
                    value: format!(
                        "timed out after {} s; the run was interrupted and the context keeps its state",
                        entry.timeout_secs
                    ),
                    traceback: error.map(|e| e.traceback).unwrap_or_default(),
                }),
                Some(StopReason::Killed) => Some(ExecutionError {
                    name: run_errors::KILLED.into(),
                    value: "the run was killed; the context keeps its state".into(),
                    traceback: error.map(|e| e.traceback).unwrap_or_default(),
                }),
                _ => error,
            };
        }
        CellEnd::Died {
            exit_code,
            reason,
            deliberate,
            oom,
            results,
        } => {
            outcome.results = results;
            if let Some(mut p) = slot.process.take() {
                p.kill().await;
            }
            let message = format!(
                "the {} context ended during this run: {reason}",
                context.language
            );
            if !deliberate {
                slot.died = Some(reason);
                entry.push_output(Stream::Stderr, format!("{message}\n").as_bytes());
            }
            let memory = oom.then_some(job.launch.memory_mb);
            entry.finish_cell(exit_code, (!deliberate).then_some(message.clone()), memory);
            if !deliberate {
                outcome.error = Some(ExecutionError {
                    name: if oom {
                        run_errors::OUT_OF_MEMORY.into()
                    } else {
                        "ContextDied".into()
                    },
                    value: message,
                    traceback: String::new(),
                });
            }
        }
        CellEnd::Stuck { results } => {
            outcome.results = results;
            slot.process = None;
            let reason =
                "a run did not stop within 3 s of being interrupted, so its interpreter was killed"
                    .to_string();
            slot.died = Some(reason.clone());
            entry.push_output(Stream::Stderr, format!("[sandlot: {reason}]\n").as_bytes());
            entry.finish_cell(1, Some(reason), None);
        }
    }
    context.set_current(None);
    context.set_state(if slot.process.is_some() {
        ContextState::Idle
    } else {
        ContextState::Stopped
    });
    outcome
}
