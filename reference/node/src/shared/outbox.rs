//! The batching outbox of one peer link.
//!
//! The driver [`push`](Outbox::push)es each frame for a peer (already encoded); the peer's writer
//! task awaits [`ready`](Outbox::ready), [`take_batch`](Outbox::take_batch)es everything queued up
//! to a byte budget and writes the batch with one syscall. Pushing never blocks the driver: a full
//! outbox rejects the frame and counts it. That is safe because the [`Replica`] re-sends what a
//! peer has not acknowledged (go-back-N), and it keeps a slow or dead link from growing memory.
//!
//! # Invariants
//! - **FIFO**: frames leave in the order they were pushed.
//! - **Bounded**: at most `max_frames` frames are queued, and at most `max_bytes` bytes, except
//!   that one frame larger than `max_bytes` is accepted into an *empty* outbox (otherwise it
//!   could never be sent, and the go-back-N re-send would retry it forever).
//! - **No lost wake-up**: a [`Ready`] future resolves once a frame is queued or the outbox is
//!   closed; it checks the queue and stores its waker under the same lock that `push` and `close`
//!   take to queue and to take the waker.
//! - **Closed is final**: after [`close`](Outbox::close) every push is refused, and `ready`
//!   resolves at once, so the writer task wakes up and exits. Frames still queued can be taken.
//!
//! One writer task consumes an outbox: `ready` keeps one waker, the last poll's.
//!
//! [`Replica`]: converge_core::replica::Replica

use crate::sync::{Arc, Mutex, lock};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Why [`Outbox::push`] refused a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The outbox holds its maximum frames or bytes; the frame was dropped and counted.
    Full,
    /// The outbox was closed (the link is going away); the frame was dropped.
    Closed,
}

/// An outbox's counters, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Frames queued now.
    pub queued_frames: usize,
    /// Bytes queued now.
    pub queued_bytes: usize,
    /// Frames accepted since the outbox was made.
    pub pushed: u64,
    /// Frames refused because the outbox was full.
    pub rejected_full: u64,
}

/// The outbox of one peer link; see the module docs.
pub struct Outbox {
    max_frames: usize,
    max_bytes: usize,
    state: Mutex<State>,
}

struct State {
    frames: VecDeque<Vec<u8>>,
    /// The sum of the queued frames' lengths.
    bytes: usize,
    /// The writer task's waker, from the last `ready` poll that found nothing to do.
    waker: Option<Waker>,
    closed: bool,
    pushed: u64,
    rejected_full: u64,
}

impl Outbox {
    /// An empty outbox holding at most `max_frames` frames and `max_bytes` bytes.
    pub fn new(max_frames: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Outbox {
            max_frames,
            max_bytes,
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                waker: None,
                closed: false,
                pushed: 0,
                rejected_full: 0,
            }),
        })
    }

    /// Queues `frame` and wakes the writer; never blocks.
    ///
    /// Refuses the frame when the outbox is closed, or full (counted in
    /// [`OutboxStats::rejected_full`]).
    pub fn push(&self, frame: Vec<u8>) -> Result<(), PushError> {
        let waker = {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(PushError::Closed);
            }
            let over_bytes = state.bytes.saturating_add(frame.len()) > self.max_bytes;
            let full =
                state.frames.len() >= self.max_frames || (over_bytes && !state.frames.is_empty());
            if full {
                state.rejected_full += 1;
                return Err(PushError::Full);
            }
            state.bytes += frame.len();
            state.frames.push_back(frame);
            state.pushed += 1;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Moves queued frames, oldest first, into `out` until the next one would take the batch past
    /// `max_bytes`; always at least one frame when any is queued. Returns how many it moved.
    pub fn take_batch(&self, max_bytes: usize, out: &mut Vec<Vec<u8>>) -> usize {
        let mut state = lock(&self.state);
        let mut moved = 0;
        let mut batch_bytes = 0usize;
        while let Some(front) = state.frames.front() {
            let len = front.len();
            if moved > 0 && batch_bytes.saturating_add(len) > max_bytes {
                break;
            }
            if let Some(frame) = state.frames.pop_front() {
                state.bytes -= len;
                batch_bytes += len;
                moved += 1;
                out.push(frame);
            }
        }
        moved
    }

    /// A future resolving when a frame is queued or the outbox is closed.
    pub fn ready(&self) -> Ready<'_> {
        Ready { outbox: self }
    }

    /// Closes the outbox: later pushes are refused and the writer is woken.
    pub fn close(&self) {
        let waker = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// The outbox's counters now.
    pub fn stats(&self) -> OutboxStats {
        let state = lock(&self.state);
        OutboxStats {
            queued_frames: state.frames.len(),
            queued_bytes: state.bytes,
            pushed: state.pushed,
            rejected_full: state.rejected_full,
        }
    }
}

/// The future of [`Outbox::ready`].
pub struct Ready<'a> {
    outbox: &'a Outbox,
}

impl Future for Ready<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.outbox.state);
        if state.closed || !state.frames.is_empty() {
            return Poll::Ready(());
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            stored => *stored = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ready_now(outbox: &Outbox) -> bool {
        let mut ready = outbox.ready();
        Pin::new(&mut ready)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    #[test]
    fn frames_leave_in_order_in_batches_bounded_by_bytes() {
        let outbox = Outbox::new(10, 100);
        for i in 0..5u8 {
            outbox.push(vec![i; 10]).expect("room");
        }
        let mut out = Vec::new();
        assert_eq!(outbox.take_batch(25, &mut out), 2);
        assert_eq!(outbox.take_batch(25, &mut out), 2);
        assert_eq!(outbox.take_batch(1000, &mut out), 1);
        assert_eq!(outbox.take_batch(1000, &mut out), 0);
        let firsts: Vec<u8> = out.iter().map(|f| f[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 3, 4]);
        assert_eq!(outbox.stats().queued_bytes, 0);
    }

    #[test]
    fn a_batch_holds_at_least_one_frame() {
        let outbox = Outbox::new(10, 100);
        outbox.push(vec![0; 50]).expect("room");
        let mut out = Vec::new();
        assert_eq!(outbox.take_batch(10, &mut out), 1);
    }

    #[test]
    fn full_outbox_rejects_and_counts() {
        let outbox = Outbox::new(2, 25);
        outbox.push(vec![0; 10]).expect("room");
        assert_eq!(outbox.push(vec![0; 20]), Err(PushError::Full), "bytes");
        outbox.push(vec![0; 10]).expect("room");
        assert_eq!(outbox.push(vec![]), Err(PushError::Full), "frames");
        assert_eq!(
            outbox.stats(),
            OutboxStats {
                queued_frames: 2,
                queued_bytes: 20,
                pushed: 2,
                rejected_full: 2
            }
        );
    }

    #[test]
    fn an_oversized_frame_goes_alone_into_an_empty_outbox() {
        let outbox = Outbox::new(4, 10);
        outbox.push(vec![0; 30]).expect("empty outbox takes it");
        assert_eq!(outbox.push(vec![0; 1]), Err(PushError::Full));
    }

    #[test]
    fn ready_resolves_on_push_and_on_close() {
        let outbox = Outbox::new(4, 100);
        assert!(!ready_now(&outbox));
        outbox.push(vec![1]).expect("room");
        assert!(ready_now(&outbox));
        let mut out = Vec::new();
        outbox.take_batch(100, &mut out);
        assert!(!ready_now(&outbox));
        outbox.close();
        assert!(outbox.is_closed());
        assert!(ready_now(&outbox));
        assert_eq!(outbox.push(vec![2]), Err(PushError::Closed));
        assert_eq!(outbox.stats().rejected_full, 0, "closed is not full");
    }

    #[test]
    fn push_wakes_a_pending_writer() {
        use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
        use std::task::Wake;
        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.store(true, StdOrdering::SeqCst);
            }
        }
        let outbox = Outbox::new(4, 100);
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut ready = outbox.ready();
        assert!(
            Pin::new(&mut ready)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        outbox.push(vec![1]).expect("room");
        assert!(flag.0.load(StdOrdering::SeqCst));
    }
}
