//! Group commit: concurrent callers share one durable commit.
//!
//! A durable commit costs one `fsync`, a few milliseconds on most disks. Committing each event
//! alone would cap ingest at a few hundred events per second; here, while one commit is in
//! flight, the events that arrive queue up and go together in the next one. Under load a commit
//! carries many events; when idle, an event is committed at once, without waiting for company.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::{NewEvent, Result, Store, StoreError};

/// One caller's events, stored together in one commit, and where to say so.
type Waiter = (Vec<NewEvent>, oneshot::Sender<Result<Vec<i64>>>);

/// Cheap to clone; all clones feed one writer task.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Waiter>,
}

impl GroupCommit {
    /// Starts the writer task. `max_batch` bounds the events of one commit (and so the time one
    /// commit holds the database).
    pub fn start(store: Arc<dyn Store>, max_batch: usize) -> GroupCommit {
        let (tx, rx) = mpsc::channel::<Waiter>(max_batch.max(1) * 8);
        tokio::spawn(writer(store, rx, max_batch.max(1)));
        GroupCommit { tx }
    }

    /// Stores one event; returns its id once it is durable.
    pub async fn insert(&self, event: NewEvent) -> Result<i64> {
        let ids = self.insert_all(vec![event]).await?;
        Ok(ids[0])
    }

    /// Stores several events in the same commit (all or none); returns their ids, in order,
    /// once they are durable. For a request that carries several alerts.
    pub async fn insert_all(&self, events: Vec<NewEvent>) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send((events, done))
            .await
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Waiter>, max_batch: usize) {
    let mut events = Vec::with_capacity(max_batch);
    let mut waiters: Vec<(usize, oneshot::Sender<Result<Vec<i64>>>)> =
        Vec::with_capacity(max_batch);
    while let Some((first, done)) = rx.recv().await {
        waiters.push((first.len(), done));
        events.extend(first);
        // A caller's events are never split across commits; a large one may exceed max_batch.
        while events.len() < max_batch {
            match rx.try_recv() {
                Ok((evs, w)) => {
                    waiters.push((evs.len(), w));
                    events.extend(evs);
                }
                Err(_) => break,
            }
        }
        let result = store.insert(&events).await;
        events.clear();
        match result {
            Ok(ids) => {
                let mut ids = ids.into_iter();
                for (n, w) in waiters.drain(..) {
                    let _ = w.send(Ok(ids.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                // Nothing of the batch was written (one transaction): every caller hears it.
                for (_, w) in waiters.drain(..) {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
    }
}
