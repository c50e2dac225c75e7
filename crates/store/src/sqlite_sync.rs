//! The SQLite side of the way back: the incident map, the inbox, write-backs, cursors.
//! A child of `sqlite` so it shares the store's connections and helpers.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pagerduty::events::EventAction;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::{SqliteStore, map_err, ms, ts};
use crate::rows::{INCIDENT_COLUMNS, WRITEBACK_COLUMNS, incident, json_text, writeback};
use crate::sync::{
    InboxItem, IncidentUpdate, MappedIncident, MonitorState, NewWriteback, Received, SyncEffects,
    WritebackOutcome, WritebackRecord, WritebackState,
};
use crate::{EventKind, NewEvent, Result};

/// A row's event is a trigger after a recovery, or after PagerDuty resolved the incident: a
/// new problem. PagerDuty opens a new incident for it, so what was known of the old one (its
/// id, status, memo) no longer applies. (In `DO UPDATE`, bare columns are the stored row's.)
const NEW_PROBLEM: &str = "excluded.monitor_state = 'problem' \
    AND (monitor_state = 'recovered' OR pd_status = 'resolved')";

/// Writes the incident-map rows of the alert events among `events`, in the caller's
/// transaction (the one storing the events): one multi-row upsert per 1,000 events, so the
/// map costs the group commit a statement, not a statement per event. Rows of one key in one
/// statement apply in order.
pub(super) async fn map_origins(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[NewEvent],
) -> Result<()> {
    let rows: Vec<(&NewEvent, &crate::Origin, &str, MonitorState)> = events
        .iter()
        .filter(|ev| ev.kind != EventKind::Change)
        .filter_map(|ev| {
            let state = match ev.action? {
                EventAction::Trigger => MonitorState::Problem,
                EventAction::Acknowledge => MonitorState::Acknowledged,
                EventAction::Resolve => MonitorState::Recovered,
            };
            Some((ev, ev.origin.as_ref()?, ev.dedup_key.as_deref()?, state))
        })
        .collect();
    let update = format!(
        " ON CONFLICT (routing_key, dedup_key) DO UPDATE SET \
           source = excluded.source, \
           monitor_ref = excluded.monitor_ref, \
           problem_id = CASE WHEN {NEW_PROBLEM} THEN excluded.problem_id \
               ELSE COALESCE(problem_id, excluded.problem_id) END, \
           problem_started_at = CASE WHEN {NEW_PROBLEM} THEN excluded.problem_started_at \
               ELSE COALESCE(problem_started_at, excluded.problem_started_at) END, \
           problem_seen_at = CASE WHEN {NEW_PROBLEM} THEN excluded.problem_seen_at \
               ELSE problem_seen_at END, \
           incident_id = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE incident_id END, \
           incident_url = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE incident_url END, \
           memo = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE memo END, \
           pd_status = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE pd_status END, \
           pd_changed_at = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE pd_changed_at END, \
           monitor_state = CASE WHEN excluded.monitor_state = 'problem' \
               AND monitor_state = 'acknowledged' AND pd_status IS NOT 'resolved' \
               THEN 'acknowledged' ELSE excluded.monitor_state END, \
           monitor_changed_at = excluded.monitor_changed_at, \
           updated_at = excluded.updated_at"
    );
    for chunk in rows.chunks(super::ROWS_PER_STATEMENT) {
        let mut b = QueryBuilder::<Sqlite>::new(
            "INSERT INTO incidents (routing_key, dedup_key, source, monitor_ref, problem_id, \
               problem_started_at, problem_seen_at, monitor_state, monitor_changed_at, \
               created_at, updated_at) ",
        );
        b.push_values(chunk, |mut row, (ev, origin, dedup_key, state)| {
            let at = ms(ev.received_at);
            row.push_bind(ev.routing_key.clone())
                .push_bind(dedup_key.to_string())
                .push_bind(origin.source.clone())
                .push_bind(json_text(&origin.monitor_ref))
                .push_bind(origin.problem_id.clone())
                .push_bind(origin.started_at.map(ms))
                .push_bind(at)
                .push_bind(state.as_str())
                .push_bind(at)
                .push_bind(at)
                .push_bind(at);
        });
        b.push(&update);
        b.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

async fn update_incidents_in(
    tx: &mut Transaction<'_, Sqlite>,
    updates: &[IncidentUpdate],
) -> Result<()> {
    for u in updates {
        sqlx::query(
            "UPDATE incidents SET incident_id = ?3, \
               incident_url = COALESCE(?4, incident_url), \
               service_id = COALESCE(?5, service_id), \
               pd_status = COALESCE(?6, pd_status), \
               pd_changed_at = CASE WHEN ?6 IS NULL THEN pd_changed_at ELSE ?7 END, \
               updated_at = ?7 \
             WHERE routing_key = ?1 AND dedup_key = ?2",
        )
        .bind(&u.routing_key)
        .bind(&u.dedup_key)
        .bind(&u.incident_id)
        .bind(u.incident_url.as_deref())
        .bind(u.service_id.as_deref())
        .bind(u.pd_status.as_deref())
        .bind(ms(u.at))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

async fn insert_writebacks(
    tx: &mut Transaction<'_, Sqlite>,
    items: &[NewWriteback],
    now: Timestamp,
) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(items.len());
    for w in items {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO writebacks (monitor, routing_key, dedup_key, change, next_attempt_at, \
               created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )
        .bind(&w.monitor)
        .bind(&w.routing_key)
        .bind(&w.dedup_key)
        .bind(json_text(&w.change))
        .bind(ms(w.due))
        .bind(ms(now))
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?;
        ids.push(id);
    }
    Ok(ids)
}

/// A write-back that may be carried out at `?1`: pending, due, and the oldest pending one of
/// its problem and monitor (they apply in order).
const DUE_WRITEBACK: &str = "state = 'pending' AND next_attempt_at <= ?1 \
    AND NOT EXISTS (SELECT 1 FROM writebacks o WHERE o.state = 'pending' \
      AND o.monitor = w.monitor AND o.routing_key = w.routing_key \
      AND o.dedup_key = w.dedup_key AND o.id < w.id)";

/// Whether a live claim holds write-back `id`.
fn held(claims: &HashMap<i64, (String, Timestamp)>, id: i64, now: Timestamp) -> bool {
    claims.get(&id).is_some_and(|(_, expires)| *expires > now)
}

impl SqliteStore {
    pub(super) async fn sync_receive(
        &self,
        origin: &str,
        external_id: &str,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Received> {
        let mut tx = self.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO sync_inbox (origin, external_id, body, received_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (external_id) DO NOTHING RETURNING id",
        )
        .bind(origin)
        .bind(external_id)
        .bind(body)
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(id.map_or(Received::Duplicate, Received::New))
    }

    pub(super) async fn sync_inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>> {
        let rows = sqlx::query(
            "SELECT id, origin, external_id, body, received_at FROM sync_inbox \
             WHERE processed_at IS NULL ORDER BY id LIMIT ?1",
        )
        .bind(limit as i64)
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(rows
            .iter()
            .map(|r| InboxItem {
                id: r.get("id"),
                origin: r.get("origin"),
                external_id: r.get("external_id"),
                body: r.get("body"),
                received_at: ts(r.get("received_at")),
            })
            .collect())
    }

    pub(super) async fn sync_inbox_done(
        &self,
        id: i64,
        effects: &SyncEffects,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE sync_inbox SET processed_at = ?2, outcome = ?3 \
             WHERE id = ?1 AND processed_at IS NULL",
        )
        .bind(id)
        .bind(ms(now))
        .bind(&effects.outcome)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // Processed already (by an earlier run that crashed after committing): nothing twice.
        if done.rows_affected() == 1 {
            update_incidents_in(&mut tx, &effects.updates).await?;
            insert_writebacks(&mut tx, &effects.writebacks, now).await?;
            for key in &effects.seen {
                sqlx::query(
                    "INSERT INTO sync_seen (key, seen_at) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(ms(now))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
        tx.commit().await.map_err(map_err)
    }

    pub(super) async fn sync_incidents_by_dedup_key(
        &self,
        dedup_key: &str,
    ) -> Result<Vec<MappedIncident>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE dedup_key = ?1 \
             ORDER BY updated_at DESC"
        )))
        .bind(dedup_key)
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)?;
        rows.iter().map(incident).collect()
    }

    pub(super) async fn sync_incidents_by_id(
        &self,
        incident_id: &str,
    ) -> Result<Vec<MappedIncident>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE incident_id = ?1 \
             ORDER BY updated_at DESC"
        )))
        .bind(incident_id)
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)?;
        rows.iter().map(incident).collect()
    }

    pub(super) async fn sync_list_incidents(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<MappedIncident>> {
        let filter = if open_only {
            "WHERE NOT (monitor_state = 'recovered' AND pd_status IS 'resolved')"
        } else {
            ""
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents {filter} \
             ORDER BY updated_at DESC LIMIT ?1"
        )))
        .bind(limit as i64)
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)?;
        rows.iter().map(incident).collect()
    }

    pub(super) async fn sync_update_incidents(&self, updates: &[IncidentUpdate]) -> Result<()> {
        let mut tx = self.begin().await?;
        update_incidents_in(&mut tx, updates).await?;
        tx.commit().await.map_err(map_err)
    }

    pub(super) async fn sync_enqueue_writebacks(
        &self,
        items: &[NewWriteback],
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let ids = insert_writebacks(&mut tx, items, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ids)
    }

    pub(super) async fn sync_due_writebacks(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<WritebackRecord>> {
        let claims = self.writeback_claims.lock().await;
        let live = claims.values().filter(|(_, exp)| *exp > now).count();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WRITEBACK_COLUMNS} FROM writebacks w WHERE {DUE_WRITEBACK} \
             ORDER BY next_attempt_at, id LIMIT ?2"
        )))
        .bind(ms(now))
        .bind((limit + live) as i64)
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)?;
        let mut out = Vec::with_capacity(limit.min(rows.len()));
        for row in &rows {
            let w = writeback(row)?;
            if !held(&claims, w.id, now) {
                out.push(w);
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Claims are held in memory, like the outbox's: one daemon uses a data directory.
    pub(super) async fn sync_claim_writebacks(
        &self,
        owner: &str,
        ids: &[i64],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<WritebackRecord>> {
        let mut claims = self.writeback_claims.lock().await;
        claims.retain(|_, (_, expires)| *expires > now);
        let expires = now
            .checked_add(SignedDuration::try_from(lease).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX);
        let mut out = Vec::new();
        for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
            // `?1` is now; the ids follow. Built from constants and numbers only.
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "SELECT {WRITEBACK_COLUMNS} FROM writebacks w WHERE {DUE_WRITEBACK} \
                 AND id IN ({})",
                list.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ms(now));
            for id in chunk {
                q = q.bind(*id);
            }
            let rows = q.fetch_all(&self.writer).await.map_err(map_err)?;
            for row in &rows {
                let w = writeback(row)?;
                if !held(&claims, w.id, now) {
                    claims.insert(w.id, (owner.to_owned(), expires));
                    out.push(w);
                }
            }
        }
        out.sort_by_key(|w| (w.next_attempt_at, w.id));
        Ok(out)
    }

    pub(super) async fn sync_finish_writeback(
        &self,
        id: i64,
        outcome: &WritebackOutcome,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let (state, next, error, detail) = match outcome {
            WritebackOutcome::Done { detail, .. } => ("done", None, None, Some(detail.as_str())),
            WritebackOutcome::Retry { error, retry_at } => {
                ("pending", Some(ms(*retry_at)), Some(error.as_str()), None)
            }
            WritebackOutcome::Failed { error } => ("failed", None, Some(error.as_str()), None),
        };
        let row = sqlx::query(
            "UPDATE writebacks SET state = ?2, attempts = attempts + 1, \
               next_attempt_at = COALESCE(?3, next_attempt_at), \
               last_error = COALESCE(?4, last_error), detail = COALESCE(?5, detail), \
               finished_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?6 END \
             WHERE id = ?1 AND state = 'pending' RETURNING routing_key, dedup_key",
        )
        .bind(id)
        .bind(state)
        .bind(next)
        .bind(error)
        .bind(detail)
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if let (
            Some(row),
            WritebackOutcome::Done {
                memo: Some(memo), ..
            },
        ) = (row, outcome)
        {
            sqlx::query(
                "UPDATE incidents SET memo = ?3, updated_at = ?4 \
                 WHERE routing_key = ?1 AND dedup_key = ?2",
            )
            .bind(row.get::<String, _>(0))
            .bind(row.get::<String, _>(1))
            .bind(json_text(memo))
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        self.writeback_claims.lock().await.remove(&id);
        Ok(())
    }

    pub(super) async fn sync_list_writebacks(
        &self,
        state: Option<WritebackState>,
        limit: usize,
    ) -> Result<Vec<WritebackRecord>> {
        let mut b =
            QueryBuilder::<Sqlite>::new(format!("SELECT {WRITEBACK_COLUMNS} FROM writebacks"));
        if let Some(state) = state {
            b.push(" WHERE state = ").push_bind(state.as_str());
        }
        b.push(" ORDER BY id DESC LIMIT ").push_bind(limit as i64);
        let rows = b.build().fetch_all(&self.writer).await.map_err(map_err)?;
        rows.iter().map(writeback).collect()
    }

    pub(super) async fn sync_seen(&self, key: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sync_seen WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    pub(super) async fn sync_cursor(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM sync_cursors WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)
    }

    pub(super) async fn sync_set_cursor(
        &self,
        name: &str,
        value: &str,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO sync_cursors (name, value, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}
