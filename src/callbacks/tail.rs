//! What the callbacks of one group commit leave for its end: their payments' changes, applied
//! together by the engine's set-based path (`engine::apply_many`), then each event's effect
//! and each stored callback's verdict written by one statement each.
//!
//! A callback's own part (stored raw, its event ids claimed, resolved to its attempts and
//! reviewed by its adapter) runs in its savepoint as before; only the changes it settles
//! wait, in the order the callbacks came (several to one payment apply in turn). After a
//! failed tail the committer runs the next batches one piece at a time: each piece's changes
//! are applied as it leaves them, so one bad change fails its callback alone.

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

/// A stored callback whose verdict is written at the end.
struct Row {
    id: Uuid,
    slots: Vec<Slot>,
    /// Its first change's index (what a rewind cuts back to).
    first_change: usize,
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
        });
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

    async fn apply(self, conn: &mut Conn) -> Result<(), StoreError> {
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
        let effects: Vec<(String, String, &'static str)> = claims
            .into_iter()
            .zip(&applied)
            .map(|((rail, id), a)| (rail, id, a.as_str()))
            .collect();
        store::set_effects(conn, &effects).await?;
        let verdicts: Vec<(Uuid, String)> = self
            .rows
            .iter()
            .map(|r| {
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
                (r.id, verdict)
            })
            .collect();
        store::set_verdicts(conn, &verdicts).await?;
        Ok(())
    }
}

impl Tail for CallbackTail {
    fn mark(&self) -> usize {
        self.rows.len()
    }

    fn rewind(&mut self, mark: usize) {
        if let Some(r) = self.rows.get(mark) {
            self.changes.truncate(r.first_change);
        }
        self.rows.truncate(mark);
    }

    fn one_by_one(&mut self) {
        self.now = true;
    }

    fn finish(self, conn: &mut Conn) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.apply(conn))
    }
}
