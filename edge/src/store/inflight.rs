//! Objects being filled from upstream, readable while they fill.
//!
//! The writer appends pieces as they arrive; any number of readers follow behind it, each at
//! its own position and optionally inside a range, waiting when they catch up. A fill that
//! fails is seen by every reader as an error, never as a short body that looks complete.

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use tokio::sync::watch;

/// How far a fill has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// This many bytes are readable; more will come.
    Filling(u64),
    /// The body is complete at this length.
    Done(u64),
    /// The fill was abandoned: the body will never complete.
    Failed,
}

/// An object being filled.
pub(crate) struct Inflight {
    /// pingora's serialized meta (internal, header) as given when the fill began.
    pub meta: (Vec<u8>, Vec<u8>),
    /// (offset, bytes) of each piece received, in order.
    pieces: RwLock<Vec<(u64, Bytes)>>,
    state: watch::Sender<Fill>,
}

/// Why a reader could not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream fill this response was following failed")]
pub(crate) struct FillFailed;

impl Inflight {
    pub fn new(meta: (Vec<u8>, Vec<u8>)) -> Self {
        let (state, _) = watch::channel(Fill::Filling(0));
        Self {
            meta,
            pieces: RwLock::new(Vec::new()),
            state,
        }
    }

    /// Appends a piece; returns the new length.
    pub fn append(&self, data: Bytes) -> u64 {
        let mut pieces = self.pieces.write();
        let offset = pieces.last().map_or(0, |(o, b)| o + b.len() as u64);
        let len = offset + data.len() as u64;
        if !data.is_empty() {
            pieces.push((offset, data));
        }
        drop(pieces);
        self.state.send_replace(Fill::Filling(len));
        len
    }

    /// Marks the body complete.
    pub fn finish(&self) {
        let len = self.len();
        self.state.send_replace(Fill::Done(len));
    }

    /// Marks the fill failed, waking every reader.
    pub fn fail(&self) {
        self.state.send_if_modified(|s| {
            let change = !matches!(s, Fill::Done(_));
            if change {
                *s = Fill::Failed;
            }
            change
        });
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.pieces.read().last().map_or(0, |(o, b)| o + b.len() as u64)
    }

    /// A reader from the start.
    pub fn reader(self: &std::sync::Arc<Self>) -> PartialReader {
        PartialReader {
            obj: self.clone(),
            rx: self.state.subscribe(),
            pos: 0,
            end: None,
        }
    }

    /// Bytes `from..to` (both within what was received).
    fn slice(&self, from: u64, to: u64) -> Bytes {
        let pieces = self.pieces.read();
        let first = pieces.partition_point(|(o, b)| o + b.len() as u64 <= from);
        let (o, b) = &pieces[first];
        if to <= o + b.len() as u64 {
            return b.slice((from - o) as usize..(to - o) as usize);
        }
        let mut out = BytesMut::with_capacity((to - from) as usize);
        for (o, b) in &pieces[first..] {
            if *o >= to {
                break;
            }
            let start = from.saturating_sub(*o) as usize;
            let end = ((to - o) as usize).min(b.len());
            out.extend_from_slice(&b[start..end]);
        }
        out.freeze()
    }
}

/// A reader following a fill.
pub(crate) struct PartialReader {
    obj: std::sync::Arc<Inflight>,
    rx: watch::Receiver<Fill>,
    pos: u64,
    /// Exclusive end, when reading a range.
    end: Option<u64>,
}

impl PartialReader {
    /// The next bytes, waiting for the writer when caught up; `None` at the end.
    pub async fn read(&mut self) -> Result<Option<Bytes>, FillFailed> {
        loop {
            if self.end.is_some_and(|end| self.pos >= end) {
                return Ok(None);
            }
            let state = *self.rx.borrow_and_update();
            let available = match state {
                Fill::Filling(n) | Fill::Done(n) => n,
                Fill::Failed => return Err(FillFailed),
            };
            if available > self.pos {
                let upto = self.end.map_or(available, |e| e.min(available));
                let bytes = self.obj.slice(self.pos, upto);
                self.pos = upto;
                return Ok(Some(bytes));
            }
            if matches!(state, Fill::Done(_)) {
                return Ok(None);
            }
            // The sender lives as long as the object, so this only returns on a change.
            let _ = self.rx.changed().await;
        }
    }

    /// Restricts reading to `start..end` (or to the end of the body).
    pub fn seek(&mut self, start: u64, end: Option<u64>) {
        self.pos = start;
        self.end = end;
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn readers_follow_the_writer_and_see_the_end() {
        let obj = Arc::new(Inflight::new((vec![], vec![])));
        let mut early = obj.reader();
        obj.append(Bytes::from_static(b"hello "));
        assert_eq!(early.read().await.unwrap().unwrap(), "hello ");
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(b) = early.read().await.unwrap() {
                got.extend_from_slice(&b);
            }
            got
        });
        tokio::task::yield_now().await;
        obj.append(Bytes::from_static(b"world"));
        obj.finish();
        assert_eq!(waiter.await.unwrap(), b"world");
        let mut late = obj.reader();
        assert_eq!(late.read().await.unwrap().unwrap(), "hello world");
        assert_eq!(late.read().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_range_inside_a_filling_object_waits_for_its_bytes() {
        let obj = Arc::new(Inflight::new((vec![], vec![])));
        let mut r = obj.reader();
        r.seek(4, Some(8));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(b) = r.read().await.unwrap() {
                got.extend_from_slice(&b);
            }
            got
        });
        for piece in [&b"012"[..], b"345", b"678", b"9"] {
            obj.append(Bytes::copy_from_slice(piece));
            tokio::task::yield_now().await;
        }
        assert_eq!(reader.await.unwrap(), b"4567");
    }

    #[tokio::test]
    async fn a_failed_fill_is_an_error_for_every_reader() {
        let obj = Arc::new(Inflight::new((vec![], vec![])));
        obj.append(Bytes::from_static(b"part"));
        let mut r = obj.reader();
        assert!(r.read().await.unwrap().is_some());
        obj.fail();
        assert_eq!(r.read().await, Err(FillFailed));
    }

    #[test]
    fn a_finished_fill_stays_finished() {
        let done = Inflight::new((vec![], vec![]));
        done.append(Bytes::from_static(b"x"));
        done.finish();
        done.fail();
        assert_eq!(*done.state.borrow(), Fill::Done(1));
    }
}
