//! The configured rails: their adapters, their limits and the routing table.

use crate::config::{Config, ConfigError, RailConfig, RouteConfig};
use crate::domain::{Currency, Direction, Money, NewPayment, PartyIdType};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use railgate_rail::RailAdapter;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// One rail: its adapter and what bounds the traffic to it.
pub struct Rail {
    pub id: String,
    pub adapter: Arc<dyn RailAdapter>,
    pub concurrency: Arc<Semaphore>,
    pub rate: Option<DefaultDirectRateLimiter>,
    pub deadline: Duration,
    pub callback_grace: Duration,
    pub request_timeout: Duration,
    /// Reads of this rail's open batches, one at a time.
    pub batch_reads: OneAtATime,
    /// When a read of this rail's open batches last went through (micros since the epoch; 0
    /// before the first): while recent, a line of an open batch waits for the read rather
    /// than being asked about on its own (`dispatch::drive::first_sends`).
    pub batch_read_at: std::sync::atomic::AtomicI64,
}

/// Work that runs once at a time however often it is asked for: a request while it runs
/// makes the running one go round again instead of doing the same work beside it (a rail's
/// batch callbacks and its poll timer ask for the same read of its open batches).
#[derive(Debug, Default)]
pub struct OneAtATime {
    running: tokio::sync::Mutex<()>,
    again: std::sync::atomic::AtomicBool,
}

impl OneAtATime {
    /// Runs `work` until no request came in while it ran; returns at once when another
    /// caller is running it (that caller runs it again for this request).
    pub async fn run<F, Fut>(&self, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use std::sync::atomic::Ordering::SeqCst;
        self.again.store(true, SeqCst);
        loop {
            let Ok(running) = self.running.try_lock() else {
                return;
            };
            while self.again.swap(false, SeqCst) {
                work().await;
            }
            drop(running);
            // A request between the last round and letting go would otherwise wait for the
            // next one.
            if !self.again.load(SeqCst) {
                return;
            }
        }
    }
}

impl Rail {
    /// A read of this rail's open batches went through within its callback grace of `now`
    /// (micros).
    pub fn batches_read_lately(&self, now: i64) -> bool {
        let at = self
            .batch_read_at
            .load(std::sync::atomic::Ordering::Relaxed);
        let within = i64::try_from(self.callback_grace.as_micros()).unwrap_or(i64::MAX);
        at > 0 && now.saturating_sub(at) <= within
    }

    /// Waits for the rail's rate limit and a concurrency slot.
    pub async fn permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Some(r) = &self.rate {
            r.until_ready().await;
        }
        self.concurrency.clone().acquire_owned().await.ok()
    }

    /// A slot now, or `None` when the rail is at its rate or every slot is taken.
    pub fn try_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.concurrency.clone().try_acquire_owned().ok()?;
        if let Some(r) = &self.rate {
            r.check().ok()?;
        }
        Some(permit)
    }
}

#[derive(Debug, Clone)]
struct Route {
    rail: String,
    direction: Option<Direction>,
    currency: Option<Currency>,
    id_type: Option<PartyIdType>,
    prefix: Option<String>,
    programme: Option<String>,
    min_minor: Option<i64>,
    max_minor: Option<i64>,
}

impl Route {
    fn matches(&self, p: &NewPayment) -> bool {
        let amount = p.amount.minor();
        self.direction.is_none_or(|d| d == p.direction)
            && self.currency.is_none_or(|c| c == p.amount.currency())
            && self.id_type.is_none_or(|t| t == p.party.id_type())
            && self
                .prefix
                .as_deref()
                .is_none_or(|pre| p.party.id_value().starts_with(pre))
            && self
                .programme
                .as_deref()
                .is_none_or(|pr| p.programme() == Some(pr))
            && self.min_minor.is_none_or(|m| amount >= m)
            && self.max_minor.is_none_or(|m| amount <= m)
    }
}

/// Why no rail can take a payment: the API answers 422 with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    #[error("no rail named '{0}' is configured")]
    UnknownRail(String),
    #[error("rail hints are not allowed for this gateway")]
    HintNotAllowed,
    #[error("no routing rule matches this payment (direction, currency, party type and prefix, programme, amount)")]
    NoRule,
    #[error("rail '{rail}' cannot take it: {why}")]
    Incapable {
        rail: String,
        why: String,
        /// The request's field the rail cannot take (`amount.value`, `amount.currency`).
        field: &'static str,
    },
}

impl NoRoute {
    /// The request field to name in the answer: what the rail cannot take, else the hint.
    pub fn field(&self, hinted: bool) -> &'static str {
        match self {
            NoRoute::Incapable { field, .. } if !field.is_empty() => field,
            _ if hinted => "rail",
            _ => "",
        }
    }
}

pub struct Rails {
    rails: HashMap<String, Arc<Rail>>,
    routes: Vec<Route>,
    allow_hint: bool,
}

impl Rails {
    pub fn empty() -> Rails {
        Rails {
            rails: HashMap::new(),
            routes: Vec::new(),
            allow_hint: true,
        }
    }

    /// Builds every configured rail through `build` (which knows the adapter kinds).
    pub fn from_config(
        cfg: &Config,
        build: impl Fn(&RailConfig, &str) -> Result<Arc<dyn RailAdapter>, ConfigError>,
    ) -> Result<Rails, ConfigError> {
        let public = cfg.public_url();
        let mut rails = HashMap::new();
        for rc in &cfg.rails {
            let adapter = build(rc, &format!("{public}/rails/{}", rc.id))?;
            let rate = NonZeroU32::new(rc.rate_per_second)
                .map(|n| RateLimiter::direct(Quota::per_second(n)));
            let rail = Rail {
                id: rc.id.clone(),
                adapter,
                concurrency: Arc::new(Semaphore::new(rc.concurrency.max(1))),
                rate,
                deadline: Duration::from_secs(rc.deadline_secs),
                callback_grace: Duration::from_millis(rc.callback_grace_ms),
                request_timeout: Duration::from_millis(rc.request_timeout_ms),
                batch_reads: OneAtATime::default(),
                batch_read_at: std::sync::atomic::AtomicI64::new(0),
            };
            if rails.insert(rc.id.clone(), Arc::new(rail)).is_some() {
                return Err(ConfigError::Invalid(format!(
                    "rail id '{}' is configured twice",
                    rc.id
                )));
            }
        }
        let routes = cfg
            .routes
            .iter()
            .map(|r| parse_route(r, &rails))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rails {
            rails,
            routes,
            allow_hint: cfg.allow_rail_hint,
        })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Rail>> {
        self.rails.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rails.keys().map(String::as_str)
    }

    /// Picks the rail for a payment: the hint where allowed, else the first matching rule.
    pub fn route(&self, p: &NewPayment) -> Result<String, NoRoute> {
        let chosen = match &p.rail_hint {
            Some(hint) => {
                if !self.allow_hint {
                    return Err(NoRoute::HintNotAllowed);
                }
                if !self.rails.contains_key(hint) {
                    return Err(NoRoute::UnknownRail(hint.clone()));
                }
                hint.clone()
            }
            None => self
                .routes
                .iter()
                .find(|r| r.matches(p))
                .map(|r| r.rail.clone())
                .ok_or(NoRoute::NoRule)?,
        };
        self.check_capable(&chosen, p)?;
        Ok(chosen)
    }

    fn check_capable(&self, rail: &str, p: &NewPayment) -> Result<(), NoRoute> {
        let r = self
            .rails
            .get(rail)
            .ok_or_else(|| NoRoute::UnknownRail(rail.to_owned()))?;
        let caps = r.adapter.capabilities();
        let incapable = |field: &'static str, why: String| NoRoute::Incapable {
            rail: rail.to_owned(),
            why,
            field,
        };
        match p.direction {
            Direction::Disbursement if !caps.disbursement => {
                return Err(incapable("", "it does not disburse".into()))
            }
            Direction::Collection if !caps.request_to_pay => {
                return Err(incapable(
                    "",
                    "it does not take request-to-pay collections".into(),
                ))
            }
            _ => {}
        }
        if !caps.currencies.is_empty() && !caps.currencies.contains(&p.amount.currency()) {
            return Err(incapable(
                "amount.currency",
                format!("it does not move {}", p.amount.currency()),
            ));
        }
        if caps.whole_units_only && !whole_units(p.amount) {
            return Err(incapable(
                "amount.value",
                format!(
                    "it moves whole units of {} only; {} has a fraction",
                    p.amount.currency(),
                    p.amount.to_decimal_string()
                ),
            ));
        }
        if let Some(max) = caps.max_amount {
            if max.currency() == p.amount.currency() && p.amount.minor() > max.minor() {
                return Err(incapable(
                    "amount.value",
                    format!("the amount is above its limit of {max}"),
                ));
            }
        }
        Ok(())
    }
}

fn whole_units(m: Money) -> bool {
    let scale = 10i64.pow(m.currency().exponent());
    m.minor().checked_rem(scale) == Some(0)
}

fn parse_route(r: &RouteConfig, rails: &HashMap<String, Arc<Rail>>) -> Result<Route, ConfigError> {
    let bad = |what: &str| ConfigError::Invalid(format!("route to {}: {what}", r.rail));
    if !rails.contains_key(&r.rail) {
        return Err(bad("no such rail"));
    }
    let direction = r
        .direction
        .as_deref()
        .map(|d| {
            Direction::parse(d).ok_or_else(|| bad("direction must be disbursement or collection"))
        })
        .transpose()?;
    let currency: Option<Currency> = r
        .currency
        .as_deref()
        .map(|c| c.parse().map_err(|_| bad("unknown currency")))
        .transpose()?;
    let id_type = r
        .id_type
        .as_deref()
        .map(|t| PartyIdType::parse(t).ok_or_else(|| bad("unknown id_type")))
        .transpose()?;
    let amount = |s: &Option<String>| -> Result<Option<i64>, ConfigError> {
        match (s, currency) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(bad("an amount band needs a currency")),
            (Some(v), Some(c)) => railgate_rail::money::parse_minor(v, c)
                .map(Some)
                .map_err(|e| bad(&e.to_string())),
        }
    };
    Ok(Route {
        rail: r.rail.clone(),
        direction,
        currency,
        id_type,
        prefix: r.prefix.clone(),
        programme: r.programme.clone(),
        min_minor: amount(&r.min_amount)?,
        max_minor: amount(&r.max_amount)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::OneAtATime;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::Duration;

    // Twenty requests while one round runs make one more round, not twenty beside it; a
    // request after the last round has finished runs again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_while_running_make_one_more_round() {
        let gate = Arc::new(OneAtATime::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let beside = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let started_tx = std::sync::Mutex::new(Some(started_tx));
        let work = {
            let rounds = rounds.clone();
            let beside = beside.clone();
            move || {
                let rounds = rounds.clone();
                let beside = beside.clone();
                let started = started_tx.lock().unwrap().take();
                async move {
                    assert_eq!(beside.fetch_add(1, SeqCst), 0, "two rounds ran at once");
                    rounds.fetch_add(1, SeqCst);
                    if let Some(s) = started {
                        let _ = s.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    beside.fetch_sub(1, SeqCst);
                }
            }
        };
        let work = Arc::new(work);
        let first = {
            let (gate, work) = (gate.clone(), work.clone());
            tokio::spawn(async move { gate.run(|| (work)()).await })
        };
        started_rx.await.unwrap();
        let mut others = Vec::new();
        for _ in 0..20 {
            let (gate, work) = (gate.clone(), work.clone());
            others.push(tokio::spawn(async move { gate.run(|| (work)()).await }));
        }
        for o in others {
            o.await.unwrap();
        }
        first.await.unwrap();
        assert_eq!(rounds.load(SeqCst), 2, "the first round and one more");
        gate.run(|| (work)()).await;
        assert_eq!(rounds.load(SeqCst), 3);
    }
}
