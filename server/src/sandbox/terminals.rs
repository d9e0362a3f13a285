//! The local node's terminals: [`TerminalNode`] for [`LocalNode`], each call handed to its
//! [`crate::terminal::manager::TerminalManager`] with the live sandbox.

use async_trait::async_trait;
use sandlot_protocol::{CreateTerminalRequest, TerminalInfo};

use super::LocalNode;
use crate::node::{NodeResult, TerminalEvents, TerminalNode};

#[async_trait]
impl TerminalNode for LocalNode {
    async fn open_terminal(
        &self,
        sandbox_id: &str,
        spec: CreateTerminalRequest,
    ) -> NodeResult<TerminalInfo> {
        let sandbox = self.live(sandbox_id)?;
        self.terminals.open(&sandbox, spec).await
    }

    fn terminals(&self, sandbox_id: &str) -> NodeResult<Vec<TerminalInfo>> {
        Ok(self.terminals.list(&*self.live(sandbox_id)?))
    }

    fn terminal(&self, sandbox_id: &str, terminal_id: &str) -> NodeResult<TerminalInfo> {
        self.terminals.info(&*self.live(sandbox_id)?, terminal_id)
    }

    async fn terminal_input(
        &self,
        sandbox_id: &str,
        terminal_id: &str,
        data: Vec<u8>,
    ) -> NodeResult<()> {
        let sandbox = self.live(sandbox_id)?;
        self.terminals.input(&sandbox, terminal_id, &data).await
    }

    fn resize_terminal(
        &self,
        sandbox_id: &str,
        terminal_id: &str,
        cols: u16,
        rows: u16,
    ) -> NodeResult<TerminalInfo> {
        self.terminals
            .resize(&*self.live(sandbox_id)?, terminal_id, cols, rows)
    }

    async fn kill_terminal(&self, sandbox_id: &str, terminal_id: &str) -> NodeResult<TerminalInfo> {
        let sandbox = self.live(sandbox_id)?;
        self.terminals.kill(&sandbox, terminal_id).await
    }

    fn follow_terminal(
        &self,
        sandbox_id: &str,
        terminal_id: &str,
        after: u64,
    ) -> NodeResult<TerminalEvents> {
        self.terminals
            .follow(&*self.live(sandbox_id)?, terminal_id, after)
    }
}
