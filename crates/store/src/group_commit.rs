//! Group commit: concurrent callers share one durable commit.
//!
//! A durable commit costs one `fsync`, a few milliseconds on most disks. Committing each event
//! alone would cap ingest at a few hundred events per second; here, while one commit is in
//! flight, the events that arrive queue up and go together in the next one. Under load a commit
//! carries many events; when idle, an event is committed at once, without waiting for company.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::{NewEvent, Result, Store, StoreError};

type Waiter = (NewEvent, oneshot::Sender<Result<i64>>);

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
        let (done, wait) = oneshot::channel();
        self.tx
            .send((event, done))
            .await
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Waiter>, max_batch: usize) {
    let mut events = Vec::with_capacity(max_batch);
    let mut waiters = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        events.push(first.0);
        waiters.push(first.1);
        while events.len() < max_batch {
            match rx.try_recv() {
                Ok((ev, w)) => {
                    events.push(ev);
                    waiters.push(w);
                }
                Err(_) => break,
            }
        }
        let result = store.insert(&events).await;
        events.clear();
        match result {
            Ok(ids) => {
                for (w, id) in waiters.drain(..).zip(ids) {
                    let _ = w.send(Ok(id));
                }
            }
            Err(e) => {
                // Nothing of the batch was written (one transaction): every caller hears it.
                for w in waiters.drain(..) {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
    }
}
