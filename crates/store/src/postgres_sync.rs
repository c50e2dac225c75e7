//! The PostgreSQL side of the way back: the incident map, the inbox, write-backs, cursors.
//! A child of `postgres` so it shares the store's pool and helpers.

use std::collections::HashMap;

use jiff::Timestamp;
use pagerduty::events::EventAction;
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use super::{PgStore, map_err, ms, ts};
use crate::rows::{INCIDENT_COLUMNS, WRITEBACK_COLUMNS, incident, json_text, writeback};
use crate::sync::{
    InboxItem, IncidentUpdate, MappedIncident, MonitorState, NewWriteback, Received, SyncEffects,
    WritebackOutcome, WritebackRecord, WritebackState,
};
use crate::{EventKind, NewEvent, Result};

/// A row's event is a trigger after a recovery, or after PagerDuty resolved the incident: a
/// new problem. PagerDuty opens a new incident for it, so what was known of the old one (its
/// id, status, memo) no longer applies. (`i` is the stored row, `excluded` the new one.)
const NEW_PROBLEM: &str = "excluded.monitor_state = 'problem' \
    AND (i.monitor_state = 'recovered' OR i.pd_status = 'resolved')";

/// One incident-map row an alert event writes.
struct MapRow<'a> {
    event: &'a NewEvent,
    origin: &'a crate::Origin,
    dedup_key: &'a str,
    state: MonitorState,
}

/// Writes the incident-map rows of the alert events among `events`, in the caller's
/// transaction (the one storing the events). PostgreSQL refuses to change one row twice in one
/// statement, so the rows go in rounds: the first event of each key, then the second of those
/// that have one, and so on; the events of one key thus apply in order. Each round is one
/// statement, its rows in key order (the locking order).
pub(super) async fn map_origins(
    tx: &mut Transaction<'_, Postgres>,
    events: &[NewEvent],
) -> Result<()> {
    let mut rounds: Vec<Vec<MapRow<'_>>> = Vec::new();
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    for ev in events.iter().filter(|ev| ev.kind != EventKind::Change) {
        let (Some(action), Some(origin), Some(dedup_key)) =
            (ev.action, ev.origin.as_ref(), ev.dedup_key.as_deref())
        else {
            continue;
        };
        let state = match action {
            EventAction::Trigger => MonitorState::Problem,
            EventAction::Acknowledge => MonitorState::Acknowledged,
            EventAction::Resolve => MonitorState::Recovered,
        };
        let n = seen.entry((&ev.routing_key, dedup_key)).or_default();
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(MapRow {
            event: ev,
            origin,
            dedup_key,
            state,
        });
        *n += 1;
    }
    let sql = format!(
        "INSERT INTO incidents AS i (routing_key, dedup_key, source, monitor_ref, problem_id, \
           problem_started_at, problem_seen_at, monitor_state, monitor_changed_at, \
           created_at, updated_at) \
         SELECT v.rk, v.dk, v.source, v.monitor_ref, v.problem_id, v.started_at, v.at, v.state, \
           v.at, v.at, v.at \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], \
           $7::BIGINT[], $8::TEXT[]) \
           AS v (rk, dk, source, monitor_ref, problem_id, started_at, at, state) \
         ON CONFLICT (routing_key, dedup_key) DO UPDATE SET \
           source = excluded.source, \
           monitor_ref = excluded.monitor_ref, \
           problem_id = CASE WHEN {NEW_PROBLEM} THEN excluded.problem_id \
               ELSE COALESCE(i.problem_id, excluded.problem_id) END, \
           problem_started_at = CASE WHEN {NEW_PROBLEM} THEN excluded.problem_started_at \
               ELSE COALESCE(i.problem_started_at, excluded.problem_started_at) END, \
           problem_seen_at = CASE WHEN {NEW_PROBLEM} THEN excluded.problem_seen_at \
               ELSE i.problem_seen_at END, \
           incident_id = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE i.incident_id END, \
           incident_url = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE i.incident_url END, \
           memo = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE i.memo END, \
           pd_status = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE i.pd_status END, \
           pd_changed_at = CASE WHEN {NEW_PROBLEM} THEN NULL ELSE i.pd_changed_at END, \
           monitor_state = CASE WHEN excluded.monitor_state = 'problem' \
               AND i.monitor_state = 'acknowledged' \
               AND i.pd_status IS DISTINCT FROM 'resolved' \
               THEN 'acknowledged' ELSE excluded.monitor_state END, \
           monitor_changed_at = excluded.monitor_changed_at, \
           updated_at = excluded.updated_at"
    );
    for mut round in rounds {
        round.sort_by(|a, b| {
            (a.event.routing_key.as_str(), a.dedup_key)
                .cmp(&(b.event.routing_key.as_str(), b.dedup_key))
        });
        let rks: Vec<&str> = round.iter().map(|r| r.event.routing_key.as_str()).collect();
        let dks: Vec<&str> = round.iter().map(|r| r.dedup_key).collect();
        let sources: Vec<&str> = round.iter().map(|r| r.origin.source.as_str()).collect();
        let refs: Vec<String> = round
            .iter()
            .map(|r| json_text(&r.origin.monitor_ref))
            .collect();
        let problems: Vec<Option<&str>> = round
            .iter()
            .map(|r| r.origin.problem_id.as_deref())
            .collect();
        let started: Vec<Option<i64>> = round.iter().map(|r| r.origin.started_at.map(ms)).collect();
        let ats: Vec<i64> = round.iter().map(|r| ms(r.event.received_at)).collect();
        let states: Vec<&str> = round.iter().map(|r| r.state.as_str()).collect();
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&rks)
            .bind(&dks)
            .bind(&sources)
            .bind(&refs)
            .bind(&problems)
            .bind(&started)
            .bind(&ats)
            .bind(&states)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// Applies PagerDuty's side to map rows, in key order (the locking order); the updates of one
/// key keep the order given.
async fn update_incidents_in(
    tx: &mut Transaction<'_, Postgres>,
    updates: &[IncidentUpdate],
) -> Result<()> {
    let mut sorted: Vec<&IncidentUpdate> = updates.iter().collect();
    sorted.sort_by(|a, b| (&a.routing_key, &a.dedup_key).cmp(&(&b.routing_key, &b.dedup_key)));
    for u in sorted {
        sqlx::query(
            "UPDATE incidents SET incident_id = $3, \
               incident_url = COALESCE($4, incident_url), \
               service_id = COALESCE($5, service_id), \
               pd_status = COALESCE($6, pd_status), \
               pd_changed_at = CASE WHEN $6 IS NULL THEN pd_changed_at ELSE $7 END, \
               updated_at = $7 \
             WHERE routing_key = $1 AND dedup_key = $2",
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
    tx: &mut Transaction<'_, Postgres>,
    items: &[NewWriteback],
    now: Timestamp,
) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(items.len());
    for w in items {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO writebacks (monitor, routing_key, dedup_key, change, next_attempt_at, \
               created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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

/// A write-back that may be carried out at `$1`: pending, due, held by no live claim, and the
/// oldest pending one of its problem and monitor (they apply in order).
const DUE_WRITEBACK: &str = "state = 'pending' AND next_attempt_at <= $1 \
     AND (lease_until IS NULL OR lease_until <= $1) \
     AND NOT EXISTS (SELECT 1 FROM writebacks o WHERE o.state = 'pending' \
       AND o.monitor = w.monitor AND o.routing_key = w.routing_key \
       AND o.dedup_key = w.dedup_key AND o.id < w.id)";

impl PgStore {
    pub(super) async fn sync_receive(
        &self,
        origin: &str,
        external_id: &str,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Received> {
        // A replica storing the same id at the same moment waits for the other's commit, then
        // finds the conflict: one row, whichever replica PagerDuty's retry reached.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO sync_inbox (origin, external_id, body, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (external_id) DO NOTHING RETURNING id",
        )
        .bind(origin)
        .bind(external_id)
        .bind(body)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(id.map_or(Received::Duplicate, Received::New))
    }

    pub(super) async fn sync_inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>> {
        let rows = sqlx::query(
            "SELECT id, origin, external_id, body, received_at FROM sync_inbox \
             WHERE processed_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
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
        // Two replicas processing one item: the second waits on the row, then finds it
        // processed, and applies nothing.
        let done = sqlx::query(
            "UPDATE sync_inbox SET processed_at = $2, outcome = $3 \
             WHERE id = $1 AND processed_at IS NULL",
        )
        .bind(id)
        .bind(ms(now))
        .bind(&effects.outcome)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 1 {
            update_incidents_in(&mut tx, &effects.updates).await?;
            insert_writebacks(&mut tx, &effects.writebacks, now).await?;
            if !effects.seen.is_empty() {
                // In key order, the locking order.
                let mut seen: Vec<&str> = effects.seen.iter().map(String::as_str).collect();
                seen.sort_unstable();
                sqlx::query(
                    "INSERT INTO sync_seen (key, seen_at) SELECT k, $2 FROM UNNEST($1::TEXT[]) AS k \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(&seen)
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
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE dedup_key = $1 \
             ORDER BY updated_at DESC"
        )))
        .bind(dedup_key)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(incident).collect()
    }

    pub(super) async fn sync_incidents_by_id(
        &self,
        incident_id: &str,
    ) -> Result<Vec<MappedIncident>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE incident_id = $1 \
             ORDER BY updated_at DESC"
        )))
        .bind(incident_id)
        .fetch_all(&self.pool)
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
            "WHERE NOT (monitor_state = 'recovered' AND pd_status IS NOT DISTINCT FROM 'resolved')"
        } else {
            ""
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents {filter} \
             ORDER BY updated_at DESC LIMIT $1"
        )))
        .bind(limit as i64)
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WRITEBACK_COLUMNS} FROM writebacks w WHERE {DUE_WRITEBACK} \
             ORDER BY next_attempt_at, id LIMIT $2"
        )))
        .bind(ms(now))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(writeback).collect()
    }

    pub(super) async fn sync_claim_writebacks(
        &self,
        owner: &str,
        ids: &[i64],
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<Vec<WritebackRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Rows another replica is claiming right now are skipped, not waited for; once it
        // commits, their lease keeps them out of everyone else's claims.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH picked AS ( \
               SELECT id FROM writebacks w WHERE {DUE_WRITEBACK} AND id = ANY($2) \
               FOR UPDATE SKIP LOCKED) \
             UPDATE writebacks SET claimed_by = $3, lease_until = $4 FROM picked \
             WHERE writebacks.id = picked.id \
             RETURNING writebacks.id, monitor, routing_key, dedup_key, change, state, attempts, \
               next_attempt_at, last_error, detail, created_at, finished_at"
        )))
        .bind(ms(now))
        .bind(ids)
        .bind(owner)
        .bind(ms(expires))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut out = rows.iter().map(writeback).collect::<Result<Vec<_>>>()?;
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
            "UPDATE writebacks SET state = $2, attempts = attempts + 1, \
               next_attempt_at = COALESCE($3, next_attempt_at), \
               last_error = COALESCE($4, last_error), detail = COALESCE($5, detail), \
               finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE $6 END, \
               claimed_by = NULL, lease_until = NULL \
             WHERE id = $1 AND state = 'pending' RETURNING routing_key, dedup_key",
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
                "UPDATE incidents SET memo = $3, updated_at = $4 \
                 WHERE routing_key = $1 AND dedup_key = $2",
            )
            .bind(row.get::<String, _>(0))
            .bind(row.get::<String, _>(1))
            .bind(json_text(memo))
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    pub(super) async fn sync_list_writebacks(
        &self,
        state: Option<WritebackState>,
        limit: usize,
    ) -> Result<Vec<WritebackRecord>> {
        let mut b =
            QueryBuilder::<Postgres>::new(format!("SELECT {WRITEBACK_COLUMNS} FROM writebacks"));
        if let Some(state) = state {
            b.push(" WHERE state = ").push_bind(state.as_str());
        }
        b.push(" ORDER BY id DESC LIMIT ").push_bind(limit as i64);
        let rows = b.build().fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(writeback).collect()
    }

    pub(super) async fn sync_seen(&self, key: &str) -> Result<bool> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM sync_seen WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    pub(super) async fn sync_cursor(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM sync_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    pub(super) async fn sync_set_cursor(
        &self,
        name: &str,
        value: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_cursors (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
