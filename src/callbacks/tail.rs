//! What the callbacks of one group commit leave for its end: their payments' changes, applied
//! together by the engine's set-based path (`engine::apply_many`), then each event's effect
//! and each stored callback's verdict written by one statement each.
//!
//! A callback's own part (stored raw, its event ids claimed, resolved to its attempts and
//! reviewed by its adapter) runs in its savepoint as before; only the changes it settles
//! wait, in the order the callbacks came (several to one payment apply in turn). After a
//! failed tail the committer runs the next batches one piece at a time: each piece's changes
//! are applied as it leaves them, so one bad change fails its callback alone.

use super::quick::{self, Quick};
use super::Raw;
use crate::engine::{self, Applied};
use crate::store::callbacks as store;
use crate::store::group::Tail;
use crate::store::{Conn, StoreError};
use futures_util::future::BoxFuture;
use uuid::Uuid;

/// One event's payment change, and the claimed callback event whose effect it is.
pub struct Change {
    pub item: engine::Item,
    pub rail: String,
    pub callback_id: String,
}

/// What one event of a stored callback came to: known now, or its change's result.
enum Slot {
    Known(&'static str),
    Change(usize),
}

/// A callback whose verdict is written at the end.
struct Row {
    id: Uuid,
    slots: Vec<Slot>,
    /// Its first change's index (what a rewind cuts back to).
    first_change: usize,
    /// The callback as received, when it is stored at the end with its verdict (a quick one);
    /// None when its part stored it already.
    raw: Option<Raw>,
}

/// What an event came to, as a callback's part leaves it.
pub enum Effect {
    Known(&'static str),
    Change(Change),
}

#[derive(Default)]
pub struct CallbackTail {
    now: bool,
    changes: Vec<Change>,
    rows: Vec<Row>,
    /// Callbacks settled here as a whole (`quick`), before the changes are applied.
    quick: Vec<Quick>,
}

impl CallbackTail {
    /// Leaves the callback stored as `row` with what its events came to: its verdict (the
    /// effects joined) is written at the end, with its changes' results.
    pub async fn leave(
        &mut self,
        conn: &mut Conn,
        row: Uuid,
        effects: Vec<Effect>,
    ) -> Result<(), StoreError> {
        self.push_row(row, effects, None);
        self.now_or_later(conn).await
    }

    /// Leaves a callback to be settled here as a whole (`quick`).
    pub(super) async fn leave_quick(
        &mut self,
        conn: &mut Conn,
        q: Quick,
    ) -> Result<(), StoreError> {
        self.quick.push(q);
        self.now_or_later(conn).await
    }

    /// After a failed tail, each part's work is applied as it is left.
    async fn now_or_later(&mut self, conn: &mut Conn) -> Result<(), StoreError> {
        if self.now {
            let mine = std::mem::replace(
                self,
                CallbackTail {
                    now: true,
                    ..CallbackTail::default()
                },
            );
            mine.apply(conn).await?;
        }
        Ok(())
    }

    fn push_row(&mut self, row: Uuid, effects: Vec<Effect>, raw: Option<Raw>) {
        let first_change = self.changes.len();
        let mut slots = Vec::with_capacity(effects.len());
        for e in effects {
            slots.push(match e {
                Effect::Known(k) => Slot::Known(k),
                Effect::Change(c) => {
                    self.changes.push(c);
                    Slot::Change(self.changes.len().saturating_sub(1))
                }
            });
        }
        self.rows.push(Row {
            id: row,
            slots,
            first_change,
            raw,
        });
    }

    async fn apply(mut self, conn: &mut Conn) -> Result<(), StoreError> {
        let mut refusals = Vec::new();
        let quick = std::mem::take(&mut self.quick);
        if !quick.is_empty() {
            let settled = quick::settle_all(conn, quick, &mut refusals)
                .await
                .map_err(|e| match e {
                    super::InboxError::Store(e) => e,
                    super::InboxError::Commit(e) => StoreError::Corrupt(e),
                })?;
            for s in settled {
                self.push_row(s.row, s.effects, Some(s.raw));
            }
        }
        if self.rows.is_empty() {
            return Ok(());
        }
        let kind = conn.kind();
        let (items, claims): (Vec<engine::Item>, Vec<(String, String)>) = self
            .changes
            .into_iter()
            .map(|c| (c.item, (c.rail, c.callback_id)))
            .unzip();
        let payments: Vec<Uuid> = items.iter().map(|i| i.payment_id).collect();
        let mut later = engine::Deferred::default();
        let applied = engine::apply_many(conn, kind, items, &mut later).await?;
        later.run(conn).await?;
        for ((rail, _), (a, payment)) in claims.iter().zip(applied.iter().zip(&payments)) {
            if *a == Applied::Conflict {
                tracing::warn!(rail = %rail, payment = %payment, "Callback contradicts the payment's final state; conflict recorded");
                metrics::counter!("railgate_callback_conflicts_total").increment(1);
            }
        }
        let mut effects: Vec<(String, String, &'static str)> = claims
            .into_iter()
            .zip(&applied)
            .map(|((rail, id), a)| (rail, id, a.as_str()))
            .collect();
        effects.extend(refusals);
        store::set_effects(conn, &effects).await?;
        let mut fresh = Vec::new();
        let verdicts: Vec<(Uuid, String)> = self
            .rows
            .into_iter()
            .filter_map(|r| {
                let parts: Vec<&str> = r
                    .slots
                    .iter()
                    .map(|s| match s {
                        Slot::Known(k) => *k,
                        Slot::Change(i) => applied.get(*i).map_or("ignored", |a| a.as_str()),
                    })
                    .collect();
                let verdict = if parts.is_empty() {
                    "answered".to_owned()
                } else {
                    parts.join(",")
                };
                match r.raw {
                    Some(raw) => {
                        fresh.push(store::RawRow {
                            id: r.id,
                            rail: raw.rail,
                            method: raw.method,
                            path: raw.path,
                            headers: raw.headers,
                            body: raw.body,
                            verdict,
                        });
                        None
                    }
                    None => Some((r.id, verdict)),
                }
            })
            .collect();
        store::set_verdicts(conn, &verdicts).await?;
        store::store_raw_many(conn, &fresh).await?;
        Ok(())
    }
}

impl Tail for CallbackTail {
    type Mark = (usize, usize);

    fn mark(&self) -> (usize, usize) {
        (self.rows.len(), self.quick.len())
    }

    fn rewind(&mut self, (rows, quick): (usize, usize)) {
        if let Some(r) = self.rows.get(rows) {
            self.changes.truncate(r.first_change);
        }
        self.rows.truncate(rows);
        self.quick.truncate(quick);
    }

    fn one_by_one(&mut self) {
        self.now = true;
    }

    fn finish(self, conn: &mut Conn) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.apply(conn))
    }
}
