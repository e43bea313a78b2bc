//! pingora's cancel-safe response writing ("proxy tasks") for the edge's own downstream
//! sessions (HTTP/2 in `http2.rs`, HTTP/3 in `http3/session.rs`): the queue pingora fills and
//! the loop that empties it, over a protocol's two steps, taking a task (never waits) and
//! sending what it holds (waits for the client, can be dropped and resumed).
//!
//! With these, pingora's fill loop can stop waiting on a slow client to pull the next piece
//! of the upstream body into the cache, and come back to the client later.

use async_trait::async_trait;
use pingora::Result;
use pingora::protocols::http::HttpTask;
use std::collections::VecDeque;

/// A response written task by task, in two steps.
#[async_trait]
pub(crate) trait ResponseTasks: Send {
    /// The tasks pingora queued (`send_proxy_task`) and not yet taken.
    fn queue(&self) -> &VecDeque<HttpTask>;

    /// The same, to take from and add to.
    fn queue_mut(&mut self) -> &mut VecDeque<HttpTask>;

    /// Takes one task without waiting; what must wait for the client is held.
    fn take(&mut self, task: HttpTask) -> Result<()>;

    /// Whether something taken is still held.
    fn holding(&self) -> bool;

    /// Sends what is held as the client allows. Cancel-safe: what is not sent stays held.
    async fn send_held(&mut self) -> Result<()>;

    /// Whether the end of the response has been taken (or the response abandoned).
    fn ended(&self) -> bool;

    /// Whether anything queued or held is still to be sent.
    fn pending(&self) -> bool {
        self.holding() || !self.queue().is_empty()
    }

    /// Sends everything queued; true once the response has ended. Cancel-safe: a task leaves
    /// the queue only by being taken, and what it holds stays held.
    async fn write_queued(&mut self) -> Result<bool> {
        loop {
            if self.holding() {
                self.send_held().await?;
                continue;
            }
            let Some(task) = self.queue_mut().pop_front() else {
                break;
            };
            self.take(task)?;
        }
        Ok(self.ended())
    }

    /// Writes one task, in order after everything queued.
    async fn write_now(&mut self, task: HttpTask) -> Result<()> {
        self.write_queued().await?;
        self.take(task)?;
        self.send_held().await
    }

    /// Writes tasks in order; true once the response has ended.
    async fn write_all(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        for task in tasks {
            self.write_now(task).await?;
        }
        Ok(self.ended())
    }
}
