//! The local node's side of execution contexts: [`ContextNode`] for [`LocalNode`] (runs in
//! contexts, synchronous and followed, and the contexts API), warming a new sandbox's python
//! context, and idle stops.

use std::sync::Arc;

use async_trait::async_trait;

use sandlot_protocol::{
    run_errors, CodeRunRequest, ContextInfo, CreateContextRequest, ExecutionError, Language,
    ProcessInfo, ProcessStatus, SandboxStatus,
};

use super::{LocalNode, Sandbox};
use crate::exec::{ProcessEntry, StopReason};
use crate::node::{CodeRun, ContextNode, NodeError, NodeResult, ProcessEvents};

/// Stops a run whose caller went away.
struct StopOnDrop(Arc<ProcessEntry>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.request_stop(StopReason::Killed);
    }
}

/// Why a fresh process failed, as an `error` object (`None` when it completed or failed by
/// its own exit code).
pub fn process_error(info: &ProcessInfo) -> Option<ExecutionError> {
    let value = info.error.clone()?;
    let name = match info.status {
        ProcessStatus::Timeout => run_errors::TIMEOUT,
        ProcessStatus::Killed => run_errors::KILLED,
        _ if info.oom_killed => run_errors::OUT_OF_MEMORY,
        _ => run_errors::FAILED,
    };
    Some(ExecutionError {
        name: name.into(),
        value,
        traceback: String::new(),
    })
}

impl LocalNode {
    fn runnable(&self, sandbox_id: &str) -> NodeResult<Arc<Sandbox>> {
        let sandbox = self.live(sandbox_id)?;
        if sandbox.status() == SandboxStatus::Paused {
            return Err(NodeError::Paused);
        }
        Ok(sandbox)
    }

    /// Starts a new `code-interpreter` sandbox's default python context in the background.
    pub(super) fn warm_contexts(&self, sandbox: &Arc<Sandbox>) {
        if !self.cfg.warm_python_context || !sandbox.template.supports(Language::Python) {
            return;
        }
        let contexts = self.contexts.clone();
        let sandbox = sandbox.clone();
        tokio::spawn(async move { contexts.warm(sandbox, Language::Python).await });
    }

    /// Stops context interpreters that have been idle too long.
    pub async fn stop_idle_contexts(&self) {
        let all: Vec<_> = self.map().values().cloned().collect();
        for sandbox in all {
            self.contexts.stop_idle(&sandbox).await;
        }
    }
}

#[async_trait]
impl ContextNode for LocalNode {
    async fn run_code(
        &self,
        sandbox_id: &str,
        req: CodeRunRequest,
        default_timeout: u64,
    ) -> NodeResult<CodeRun> {
        if req.fresh == Some(true) {
            let mut spec = req.run;
            spec.timeout = spec.timeout.or(Some(default_timeout));
            let (info, language) = self
                .processes
                .run_sync(&self.live(sandbox_id)?, spec)
                .await?;
            return Ok(CodeRun {
                error: process_error(&info),
                info,
                language,
                results: Vec::new(),
                context_id: None,
                execution_count: None,
            });
        }
        let sandbox = self.runnable(sandbox_id)?;
        let (entry, task) = self
            .contexts
            .start_cell(&sandbox, req, default_timeout, None)?;
        sandbox.processes.insert(entry.clone());
        let guard = StopOnDrop(entry.clone());
        let (table, id) = (sandbox.clone(), entry.id.clone());
        let outcome = tokio::spawn(async move {
            let outcome = task.await;
            table.processes.remove(&id);
            outcome
        })
        .await
        .map_err(|e| NodeError::Internal(format!("cell task: {e}")))?
        .map_err(|e| NodeError::Internal(format!("cell task: {e}")))?;
        drop(guard);
        let info = entry.info(true);
        let error = outcome.error.or_else(|| process_error(&info));
        Ok(CodeRun {
            info,
            language: entry.language,
            results: outcome.results,
            error,
            context_id: Some(outcome.context_id),
            execution_count: outcome.execution_count,
        })
    }

    fn start_code_followed(
        &self,
        sandbox_id: &str,
        req: CodeRunRequest,
        default_timeout: u64,
        recorded: bool,
    ) -> NodeResult<(ProcessInfo, ProcessEvents)> {
        let sandbox = self.runnable(sandbox_id)?;
        if req.fresh == Some(true) {
            return if recorded {
                let entry = self
                    .processes
                    .start_recorded(&sandbox, req.run, default_timeout)?;
                let info = entry.info(false);
                Ok((info, self.processes.follow_entry(entry, None)))
            } else {
                self.processes
                    .start_followed(&sandbox, req.run, default_timeout)
            };
        }
        let sink = recorded.then(|| self.processes.sink(&sandbox));
        let (entry, task) = self
            .contexts
            .start_cell(&sandbox, req, default_timeout, sink)?;
        if recorded {
            self.processes.register_recorded(&sandbox, &entry)?;
            self.processes
                .retire_recorded(&sandbox, &entry, async move {
                    let _ = task.await;
                });
            let info = entry.info(false);
            return Ok((info, self.processes.follow_entry(entry, None)));
        }
        sandbox.processes.insert(entry.clone());
        let (table, id) = (sandbox.clone(), entry.id.clone());
        tokio::spawn(async move {
            let _ = task.await;
            table.processes.remove(&id);
        });
        let stop = entry.clone();
        let on_drop: Box<dyn FnOnce() + Send> = Box::new(move || {
            stop.request_stop(StopReason::Killed);
        });
        let info = entry.info(false);
        Ok((info, self.processes.follow_entry(entry, Some(on_drop))))
    }

    async fn create_context(
        &self,
        sandbox_id: &str,
        req: CreateContextRequest,
    ) -> NodeResult<ContextInfo> {
        let sandbox = self.runnable(sandbox_id)?;
        self.contexts.create(&sandbox, req).await
    }

    fn contexts(&self, sandbox_id: &str) -> NodeResult<Vec<ContextInfo>> {
        let sandbox = self.live(sandbox_id)?;
        Ok(sandbox.contexts.all().iter().map(|c| c.info()).collect())
    }

    async fn restart_context(&self, sandbox_id: &str, context_id: &str) -> NodeResult<ContextInfo> {
        let sandbox = self.runnable(sandbox_id)?;
        self.contexts.restart(&sandbox, context_id).await
    }

    async fn remove_context(&self, sandbox_id: &str, context_id: &str) -> NodeResult<()> {
        let sandbox = self.live(sandbox_id)?;
        self.contexts.remove(&sandbox, context_id).await
    }
}
