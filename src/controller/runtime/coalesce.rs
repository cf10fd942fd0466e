//! Coalescing of reconcile triggers. A change that needs the operator (a
//! deleted child, a new or edited WebCluster) reconciles at once; the triggers
//! that only report progress (a child's status, the echo of the operator's own
//! writes, pods turning ready) wait until their WebCluster has been quiet for
//! the window, so a burst of them costs one reconcile. An urgent trigger within
//! the window after one that passed waits for the window's end, so a burst of
//! deletions costs two reconciles, not one each.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// What a trigger asks of the coalescer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// The state differs from what the operator made: reconcile at once.
    Now,
    /// Progress to report: reconcile once the WebCluster is quiet.
    Settle,
}

/// One key's window.
struct Window {
    /// When the window closes.
    due: Instant,
    /// A trigger arrived that no reconcile has answered yet.
    pending: bool,
    /// An urgent trigger passed in this window.
    passed: bool,
}

/// The open windows, and their closing times in the order they were set (every
/// window lasts the same, so that order is time order; superseded ones are skipped).
struct Windows<S, K> {
    triggers: Option<S>,
    window: Duration,
    open: HashMap<K, Window>,
    closing: VecDeque<(Instant, K)>,
}

impl<S: Stream<Item = (K, Urgency)> + Unpin, K: Hash + Eq + Clone> Windows<S, K> {
    /// Takes one trigger; the key when it passes at once.
    fn take(&mut self, key: K, urgency: Urgency) -> Option<K> {
        let due = Instant::now() + self.window;
        match (self.open.get_mut(&key), urgency) {
            (None, Urgency::Now) => {
                self.open.insert(key.clone(), Window { due, pending: false, passed: true });
                self.closing.push_back((due, key.clone()));
                Some(key)
            }
            (Some(window), Urgency::Now) if !window.passed => {
                (window.passed, window.pending) = (true, false);
                Some(key)
            }
            (Some(window), Urgency::Now) => {
                window.pending = true;
                None
            }
            (Some(window), Urgency::Settle) => {
                (window.pending, window.due) = (true, window.due.max(due));
                self.closing.push_back((window.due, key));
                None
            }
            (None, Urgency::Settle) => {
                self.open.insert(key.clone(), Window { due, pending: true, passed: false });
                self.closing.push_back((due, key));
                None
            }
        }
    }

    /// The next closing time is reached: its key passes when a trigger is pending.
    fn close(&mut self) -> Option<K> {
        let (at, key) = self.closing.pop_front()?;
        if self.open.get(&key).is_none_or(|window| window.due != at) {
            return None;
        }
        let window = self.open.remove(&key)?;
        window.pending.then_some(key)
    }

    async fn next(&mut self) -> Option<K> {
        loop {
            let closing = self.closing.front().map(|(at, _)| *at);
            let Some(triggers) = self.triggers.as_mut() else {
                // The triggers ended: what is pending still passes when its window closes.
                tokio::time::sleep_until(closing?).await;
                match self.close() {
                    Some(key) => return Some(key),
                    None => continue,
                }
            };
            tokio::select! {
                trigger = triggers.next() => match trigger {
                    Some((key, _)) if self.window.is_zero() => return Some(key),
                    Some((key, urgency)) => {
                        if let Some(key) = self.take(key, urgency) {
                            return Some(key);
                        }
                    }
                    None => self.triggers = None,
                },
                () = tokio::time::sleep_until(closing.unwrap_or_else(Instant::now)), if closing.is_some() => {
                    if let Some(key) = self.close() {
                        return Some(key);
                    }
                }
            }
        }
    }
}

/// Passes urgent triggers at once (one per key and window) and the others once
/// their key has been quiet for `window`. A zero window passes every trigger.
pub fn coalesce<K>(
    triggers: impl Stream<Item = (K, Urgency)> + Send + 'static,
    window: Duration,
) -> impl Stream<Item = K> + Send
where
    K: Hash + Eq + Clone + Send + 'static,
{
    let windows = Windows { triggers: Some(triggers.boxed()), window, open: HashMap::new(), closing: VecDeque::new() };
    futures::stream::unfold(windows, |mut windows| async move {
        let key = windows.next().await?;
        Some((key, windows))
    })
}

#[cfg(test)]
mod tests {
    use super::Urgency::{Now, Settle};
    use super::*;
    use tokio::sync::mpsc;

    const WINDOW: Duration = Duration::from_millis(250);

    /// Sends `(milliseconds, key, urgency)` into a coalescer and collects what
    /// it passes, with the milliseconds since the start at which each passed.
    async fn run(sends: Vec<(u64, &'static str, Urgency)>, window: Duration) -> Vec<(u64, &'static str)> {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let triggers = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        let start = Instant::now();
        tokio::spawn(async move {
            for (at, key, urgency) in sends {
                tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                let _ = sender.send((key, urgency));
            }
        });
        coalesce(triggers, window).map(|key| (start.elapsed().as_millis() as u64, key)).collect().await
    }

    #[tokio::test(start_paused = true)]
    async fn an_urgent_trigger_passes_at_once() {
        assert_eq!(run(vec![(1000, "a", Now)], WINDOW).await, vec![(1000, "a")]);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_passes_once_the_key_is_quiet() {
        let burst = vec![(0, "a", Settle), (100, "a", Settle), (200, "a", Settle)];
        assert_eq!(run(burst, WINDOW).await, vec![(450, "a")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_repair_and_its_echo_cost_two_passes() {
        // A child deleted, then the events of its re-creation.
        let sends = vec![(0, "a", Now), (20, "a", Settle), (30, "a", Settle)];
        assert_eq!(run(sends, WINDOW).await, vec![(0, "a"), (280, "a")]);
    }

    #[tokio::test(start_paused = true)]
    async fn urgent_triggers_within_the_window_fold_into_one_at_its_end() {
        let burst = vec![(0, "a", Now), (10, "a", Now), (20, "a", Now)];
        assert_eq!(run(burst, WINDOW).await, vec![(0, "a"), (250, "a")]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_urgent_trigger_does_not_wait_for_pending_progress() {
        let sends = vec![(0, "a", Settle), (100, "a", Now)];
        assert_eq!(run(sends, WINDOW).await, vec![(100, "a")]);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_their_own_windows() {
        let sends = vec![(0, "a", Now), (100, "b", Now), (120, "a", Now), (400, "b", Settle)];
        assert_eq!(run(sends, WINDOW).await, vec![(0, "a"), (100, "b"), (250, "a"), (650, "b")]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_urgent_trigger_after_a_closed_window_passes_at_once() {
        let sends = vec![(0, "a", Now), (10, "a", Now), (300, "a", Now)];
        assert_eq!(run(sends, WINDOW).await, vec![(0, "a"), (250, "a"), (300, "a")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_window_passes_every_trigger() {
        let sends = vec![(0, "a", Settle), (0, "a", Now), (5, "a", Settle)];
        assert_eq!(run(sends, Duration::ZERO).await, vec![(0, "a"), (0, "a"), (5, "a")]);
    }
}
