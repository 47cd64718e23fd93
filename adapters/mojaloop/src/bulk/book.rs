//! What the adapter keeps about the bulks it sent, between `submit_batch`, the hub's bulk
//! callbacks and `batch_results`: per line, the payee FSP, the quote's terms (the condition
//! its fulfilment must match) and the outcomes the hub reported; per payee FSP, the bulk ids
//! and the exact bytes of each POST (so a retried upload resends them unchanged); and who is
//! waiting for a lookup or a bulk quote.
//!
//! It lives in memory, bounded ([`MAX_BATCHES`]): the gateway keeps the durable side (each
//! line's attempt, its batch and the batch's reference) and each line's own job, which asks
//! about the line and raises an exception past its deadline. A bulk this process no longer
//! holds (another instance sent it, or the process restarted) is not settled from a callback
//! it cannot check against what was sent; its lines are settled one by one or by an operator.

use crate::wire::{FspiopMoney, IdPurpose};
use chrono::{DateTime, Utc};
use railgate_rail::{Attempt, Failure, Money};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Most batches held at once; past it the oldest settled one (else the oldest) is forgotten.
pub const MAX_BATCHES: usize = 10_000;

/// The answer to a party lookup of a bulk line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found { fsp_id: String },
    Failed(Failure),
}

/// The answer to a `POST /bulkQuotes`.
#[derive(Debug, Clone, PartialEq)]
pub enum QuoteAnswer {
    Terms {
        source: String,
        put: super::wire::BulkQuotesPut,
    },
    Refused(Failure),
}

/// The payee FSP's terms for one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    pub transfer_amount: FspiopMoney,
    pub ilp_packet: String,
    pub condition: String,
}

/// What the hub said about one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The fulfilment matched the line's condition.
    Completed {
        transfer_id: String,
        fulfilment: String,
    },
    Failed(Failure),
    /// The payee FSP quoted another amount: the line was never sent, and the gateway records
    /// a conflict for an operator.
    OtherAmount {
        quoted: Money,
    },
}

#[derive(Debug, Clone)]
pub struct Line {
    pub attempt: Attempt,
    /// The line's party lookup reference ([`crate::adapter::lookup_reference`]), worked out
    /// once: answers are matched to lines by it.
    pub party_ref: String,
    pub fsp_id: Option<String>,
    pub quoted: Option<Quoted>,
    /// Carried in its part's `POST /bulkTransfers`.
    pub in_transfer: bool,
    /// Every distinct outcome reported, first first (a second one is a contradiction).
    pub outcomes: Vec<Outcome>,
}

/// The part of a batch that goes to one payee FSP: one bulk quote, one bulk transfer.
#[derive(Debug, Clone)]
pub struct Part {
    pub bulk_quote_id: String,
    pub bulk_transfer_id: String,
    pub quote_body: Option<Vec<u8>>,
    /// The quote's answer was applied to the lines.
    pub quoted: bool,
    /// Stored before it is sent; its presence means it may have reached the hub.
    pub transfer_body: Option<Vec<u8>>,
    pub transfer_expiration: Option<DateTime<Utc>>,
    /// When the hub was last sent or asked something about the bulk transfer.
    pub asked_at: Option<DateTime<Utc>>,
    /// The hub is done with the bulk transfer (COMPLETED or REJECTED).
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct Batch {
    pub created_at: DateTime<Utc>,
    pub lines: Vec<Line>,
    pub index: HashMap<Uuid, usize>,
    /// By payee FSP.
    pub parts: BTreeMap<String, Part>,
    pub batch_ref: Option<String>,
}

impl Batch {
    pub fn settled(&self) -> bool {
        self.lines.iter().all(|l| !l.outcomes.is_empty())
    }

    /// Records an outcome for the line of `attempt_id`, unless the same one is there already.
    pub fn record(&mut self, attempt_id: Uuid, outcome: Outcome) {
        if let Some(line) = self
            .index
            .get(&attempt_id)
            .and_then(|i| self.lines.get_mut(*i))
        {
            if !line.outcomes.contains(&outcome) {
                line.outcomes.push(outcome);
            }
        }
    }

    /// The lines of the part going to `fsp_id`, by position.
    pub fn lines_of(&self, fsp_id: &str) -> Vec<usize> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.fsp_id.as_deref() == Some(fsp_id))
            .map(|(i, _)| i)
            .collect()
    }
}

#[derive(Default)]
struct Inner {
    batches: HashMap<Uuid, Batch>,
    by_ref: HashMap<String, Uuid>,
    /// bulkQuoteId / bulkTransferId → (batch, payee FSP).
    by_bulk_quote: HashMap<String, (Uuid, String)>,
    by_bulk_transfer: HashMap<String, (Uuid, String)>,
    lookups: HashMap<String, Vec<oneshot::Sender<Lookup>>>,
    /// Party lookups a bulk asked, and when: an answer that comes after its upload stopped
    /// waiting is still an answer to a question we asked (acknowledged, nothing applied; the
    /// upload's next try asks again), not a callback for something unknown.
    asked: HashMap<String, std::time::Instant>,
    quotes: HashMap<String, oneshot::Sender<QuoteAnswer>>,
}

/// The adapter's record of its bulks (see the module doc).
#[derive(Default)]
pub struct Book {
    inner: Mutex<Inner>,
}

impl Book {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic elsewhere; the maps are still consistent per call.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens the batch (or finds it, when the upload is tried again with the same lines).
    pub fn open(&self, batch_id: Uuid, lines: &[Attempt]) -> Result<(), String> {
        // Hashed before the book is locked: a thousand digests are not the callbacks' wait.
        let refs: Vec<String> = lines
            .iter()
            .map(|a| crate::adapter::lookup_reference(&a.party))
            .collect();
        let mut inner = self.inner();
        if let Some(b) = inner.batches.get(&batch_id) {
            let same = b.lines.len() == lines.len()
                && b.lines
                    .iter()
                    .zip(lines)
                    .all(|(l, a)| l.attempt.attempt_id == a.attempt_id);
            return if same {
                Ok(())
            } else {
                Err(format!("batch {batch_id} was uploaded with other lines"))
            };
        }
        if inner.batches.len() >= MAX_BATCHES {
            forget_oldest(&mut inner);
        }
        let batch = Batch {
            created_at: Utc::now(),
            index: lines
                .iter()
                .enumerate()
                .map(|(i, a)| (a.attempt_id, i))
                .collect(),
            lines: lines
                .iter()
                .zip(refs)
                .map(|(a, party_ref)| Line {
                    attempt: a.clone(),
                    party_ref,
                    fsp_id: None,
                    quoted: None,
                    in_transfer: false,
                    outcomes: Vec::new(),
                })
                .collect(),
            parts: BTreeMap::new(),
            batch_ref: None,
        };
        inner.batches.insert(batch_id, batch);
        Ok(())
    }

    /// Runs `f` on the batch, if held.
    pub fn with<T>(&self, batch_id: Uuid, f: impl FnOnce(&mut Batch) -> T) -> Option<T> {
        self.inner().batches.get_mut(&batch_id).map(f)
    }

    /// Adds the part for `fsp_id` (its bulk ids registered for the callbacks), if new.
    pub fn add_part(&self, batch_id: Uuid, fsp_id: &str, quote_id: &str, transfer_id: &str) {
        let mut inner = self.inner();
        let Some(b) = inner.batches.get_mut(&batch_id) else {
            return;
        };
        b.parts.entry(fsp_id.to_owned()).or_insert_with(|| Part {
            bulk_quote_id: quote_id.to_owned(),
            bulk_transfer_id: transfer_id.to_owned(),
            quote_body: None,
            quoted: false,
            transfer_body: None,
            transfer_expiration: None,
            asked_at: None,
            done: false,
        });
        inner
            .by_bulk_quote
            .insert(quote_id.to_owned(), (batch_id, fsp_id.to_owned()));
        inner
            .by_bulk_transfer
            .insert(transfer_id.to_owned(), (batch_id, fsp_id.to_owned()));
    }

    /// Names the batch by the reference the gateway will ask `batch_results` with.
    pub fn set_ref(&self, batch_id: Uuid, batch_ref: &str) {
        let mut inner = self.inner();
        if let Some(b) = inner.batches.get_mut(&batch_id) {
            b.batch_ref = Some(batch_ref.to_owned());
            inner.by_ref.insert(batch_ref.to_owned(), batch_id);
        }
    }

    pub fn batch_of_ref(&self, batch_ref: &str) -> Option<Uuid> {
        self.inner().by_ref.get(batch_ref).copied()
    }

    pub fn ref_of(&self, batch_id: Uuid) -> Option<String> {
        self.inner()
            .batches
            .get(&batch_id)
            .and_then(|b| b.batch_ref.clone())
    }

    pub fn bulk_quote_owner(&self, bulk_quote_id: &str) -> Option<(Uuid, String)> {
        self.inner().by_bulk_quote.get(bulk_quote_id).cloned()
    }

    pub fn bulk_transfer_owner(&self, bulk_transfer_id: &str) -> Option<(Uuid, String)> {
        self.inner().by_bulk_transfer.get(bulk_transfer_id).cloned()
    }

    /// The batch a line travels in, with the line.
    pub fn line(&self, batch_id: Uuid, attempt_id: Uuid) -> Option<(Line, Option<Part>)> {
        let inner = self.inner();
        let b = inner.batches.get(&batch_id)?;
        let line = b.index.get(&attempt_id).and_then(|i| b.lines.get(*i))?;
        let part = line.fsp_id.as_ref().and_then(|f| b.parts.get(f)).cloned();
        Some((line.clone(), part))
    }

    /// The condition a line's fulfilment must match, found by the line's transfer id.
    pub fn condition_of_transfer(&self, transfer_id: &str) -> Option<String> {
        let attempt_id = crate::wire::attempt_of(transfer_id, IdPurpose::Transaction)?;
        let inner = self.inner();
        inner.batches.values().find_map(|b| {
            b.index
                .get(&attempt_id)
                .and_then(|i| b.lines.get(*i))
                .filter(|l| l.in_transfer)
                .and_then(|l| l.quoted.as_ref())
                .map(|q| q.condition.clone())
        })
    }

    /// Waits for the lookup of `party_ref` (register before sending: the answer may beat the
    /// 202).
    pub fn await_lookup(&self, party_ref: &str) -> oneshot::Receiver<Lookup> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner();
        let waiting = inner.lookups.entry(party_ref.to_owned()).or_default();
        waiting.retain(|s| !s.is_closed());
        waiting.push(tx);
        let now = std::time::Instant::now();
        if inner.asked.len() >= ASKED_KEPT {
            inner
                .asked
                .retain(|_, at| now.saturating_duration_since(*at) < ASKED_FOR);
        }
        inner.asked.insert(party_ref.to_owned(), now);
        rx
    }

    /// Hands a lookup's answer to whoever waits for it; whether it answers a lookup a bulk
    /// asked (taken by its upload, or late: its upload stopped waiting and asks again).
    pub fn answer_lookup(&self, party_ref: &str, answer: &Lookup) -> bool {
        let (waiting, asked) = {
            let mut inner = self.inner();
            let asked = inner
                .asked
                .get(party_ref)
                .is_some_and(|at| at.elapsed() < ASKED_FOR);
            (inner.lookups.remove(party_ref).unwrap_or_default(), asked)
        };
        let mut taken = false;
        for w in waiting {
            taken |= w.send(answer.clone()).is_ok();
        }
        taken || asked
    }

    /// A single attempt's lookup of the party: its answer is that attempt's, not a late one
    /// for a bulk.
    pub fn forget_asked(&self, party_ref: &str) {
        self.inner().asked.remove(party_ref);
    }

    /// Drops waiters nobody listens to any more (their upload gave up).
    pub fn forget_lookups(&self) {
        self.inner().lookups.retain(|_, w| {
            w.retain(|s| !s.is_closed());
            !w.is_empty()
        });
    }

    pub fn await_quote(&self, bulk_quote_id: &str) -> oneshot::Receiver<QuoteAnswer> {
        let (tx, rx) = oneshot::channel();
        self.inner().quotes.insert(bulk_quote_id.to_owned(), tx);
        rx
    }

    /// Hands a bulk quote's answer to the upload waiting for it; whether one did.
    pub fn answer_quote(&self, bulk_quote_id: &str, answer: QuoteAnswer) -> bool {
        match self.inner().quotes.remove(bulk_quote_id) {
            Some(w) => w.send(answer).is_ok(),
            None => false,
        }
    }
}

/// How long a bulk's lookup is remembered for its late answer, and how many are kept before
/// the older ones are let go.
const ASKED_FOR: std::time::Duration = std::time::Duration::from_secs(600);
const ASKED_KEPT: usize = 100_000;

fn forget_oldest(inner: &mut Inner) {
    let oldest = |settled_only: bool| {
        inner
            .batches
            .iter()
            .filter(|(_, b)| !settled_only || b.settled())
            .min_by_key(|(_, b)| b.created_at)
            .map(|(id, _)| *id)
    };
    let Some(id) = oldest(true).or_else(|| oldest(false)) else {
        return;
    };
    tracing::warn!(batch = %id, "Mojaloop bulk book full; forgetting its oldest batch");
    inner.batches.remove(&id);
    inner.by_ref.retain(|_, b| *b != id);
    inner.by_bulk_quote.retain(|_, (b, _)| *b != id);
    inner.by_bulk_transfer.retain(|_, (b, _)| *b != id);
}
