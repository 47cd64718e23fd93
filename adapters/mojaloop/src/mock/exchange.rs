//! The FSPIOP side of the mock hub: what it answers to Railgate's requests and callbacks, and
//! how it delivers its own callbacks and requests to Railgate.

use super::*;

// ---------------------------------------------------------------------------------------------
// Delivering callbacks and requests to Railgate

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Sign {
    Genuine,
    Forged,
}

pub(super) async fn deliver(
    s: &Arc<Shared>,
    method: Method,
    path: String,
    resource: &str,
    source: &str,
    body: Option<Vec<u8>>,
    sign: Sign,
) {
    let faults = s.inner().faults.clone();
    if faults.drop_callbacks {
        return;
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let base = s.callback_base.lock().ok().and_then(|b| b.clone());
    let Some(base) = base else {
        tracing::warn!("Mock hub has no callback base; callback dropped");
        return;
    };
    let date = http_date(Utc::now());
    let mut rb = s
        .http
        .request(method.clone(), format!("{base}{path}"))
        .header("Content-Type", media(resource))
        .header("Date", &date)
        .header(wire::H_SOURCE, source)
        .header(wire::H_DESTINATION, &s.config.dfsp_id);
    if method != Method::PUT {
        rb = rb.header("Accept", media(resource));
    }
    if let (Some(jws), Some(b)) = (&s.config.jws, &body) {
        let signer = match sign {
            Sign::Genuine => &jws.signer,
            Sign::Forged => &jws.forger,
        };
        let protected = Protected {
            method: method.as_str(),
            uri: &path,
            source,
            destination: Some(&s.config.dfsp_id),
            date: Some(&date),
        };
        if let Ok(sig) = signer.sign(&protected, b) {
            rb = rb
                .header(wire::H_SIGNATURE, sig)
                .header(wire::H_URI, &path)
                .header(wire::H_HTTP_METHOD, method.as_str());
        }
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let sent = {
        let _turn = s.sending.acquire().await;
        rb.send().await
    };
    if let Err(e) = &sent {
        // Not the path nor the error's text: both may carry a party's identifier.
        tracing::info!(
            resource,
            timeout = e.is_timeout(),
            connect = e.is_connect(),
            "Mock hub callback not delivered"
        );
    }
    let status = sent.ok().map(|r| r.status().as_u16());
    s.inner().deliveries.push(Delivery {
        method: method.to_string(),
        path,
        source: source.to_owned(),
        status,
    });
}

#[allow(clippy::too_many_arguments)] // mirrors `deliver` plus a delay
pub(super) fn spawn_deliver(
    s: &Arc<Shared>,
    delay: Duration,
    method: Method,
    path: String,
    resource: &'static str,
    source: String,
    body: Option<Vec<u8>>,
    sign: Sign,
) {
    let s = s.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        deliver(&s, method, path, resource, &source, body, sign).await;
    });
}

pub(super) fn error_body(code: &str, description: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({ "errorInformation": { "errorCode": code, "errorDescription": description } }),
    )
    .unwrap_or_default()
}

fn committed_body(fulfilment: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "fulfilment": fulfilment,
        "completedTimestamp": fspiop_datetime(Utc::now()),
        "transferState": "COMMITTED"
    }))
    .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Requests from Railgate

pub(super) struct Request<'a> {
    pub(super) method: &'a Method,
    pub(super) path: &'a str,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: &'a Bytes,
}

impl Shared {
    /// Headers, signature and JSON shape of a request from Railgate.
    pub(super) fn check(
        &self,
        r: &Request<'_>,
        resource: &str,
        is_request: bool,
        needs_destination: bool,
    ) -> Result<Value, Invalid> {
        let has_body = !r.body.is_empty();
        validate::headers(
            r.headers,
            resource,
            is_request,
            has_body,
            &self.config.dfsp_id,
            needs_destination,
        )?;
        if let Some(verifier) = self.config.jws.as_ref().and_then(|j| j.railgate.as_ref()) {
            if has_body {
                let get = |k: &str| r.headers.get(k).and_then(|v| v.to_str().ok());
                let sig = get("fspiop-signature")
                    .ok_or_else(|| validate::invalid("3105", "Invalid signature - missing"))?;
                let protected = Protected {
                    method: r.method.as_str(),
                    uri: r.path,
                    source: &self.config.dfsp_id,
                    destination: get("fspiop-destination"),
                    date: get("date"),
                };
                verifier
                    .verify(sig, &protected, r.body)
                    .map_err(|e| validate::invalid("3105", format!("Invalid signature - {e}")))?;
            }
        }
        if has_body {
            serde_json::from_slice(r.body)
                .map_err(|_| validate::invalid("3101", "Malformed syntax - not JSON"))
        } else {
            Ok(Value::Null)
        }
    }

    pub(super) fn reject(&self, resource: &str, invalid: Invalid) -> Response {
        tracing::info!(code = invalid.code, reason = %invalid.description, "Mock hub refused a request");
        let r = refuse(resource, StatusCode::BAD_REQUEST, &invalid);
        self.inner().rejections.push(invalid);
        r
    }
}

pub(super) async fn handle(
    State(s): State<Arc<Shared>>,
    kill: Option<Extension<ConnKill>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !super::gateway_admits(&s, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    let path = uri.path().to_owned();
    let r = Request {
        method: &method,
        path: &path,
        headers: &headers,
        body: &body,
    };
    s.inner().received.push(super::Received {
        method: method.as_str().to_owned(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    });
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rate = s.inner().faults.error_rate_percent;
    if method == Method::POST && rate > 0 && rand::random::<u8>() % 100 < rate {
        // Refused before anything is recorded: nothing moved.
        let resource = segments.first().copied().unwrap_or("transfers");
        return refuse(
            resource,
            StatusCode::SERVICE_UNAVAILABLE,
            &validate::invalid("2003", "Service currently unavailable"),
        );
    }
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["parties", _, id] | ["parties", _, id, _]) => get_parties(&s, &r, id),
        ("POST", ["quotes"]) => post_quotes(&s, &r),
        ("POST", ["transfers"]) => post_transfers(&s, &r, kill.map(|Extension(k)| k)).await,
        ("GET", ["transfers", id]) => get_transfer(&s, &r, id),
        ("POST", ["transactionRequests"]) => {
            post_transaction_requests(&s, &r, kill.map(|Extension(k)| k)).await
        }
        ("GET", ["transactionRequests", id]) => get_transaction_request(&s, &r, id),
        ("POST", ["bulkQuotes"]) => super::bulk::post_bulk_quotes(&s, &r),
        ("POST", ["bulkTransfers"]) => {
            super::bulk::post_bulk_transfers(&s, &r, kill.map(|Extension(k)| k)).await
        }
        ("GET", ["bulkTransfers", id]) => super::bulk::get_bulk_transfer(&s, &r, id),
        ("PUT", ["parties", ..]) => put_parties(&s, &r),
        ("PUT", ["quotes", id]) => put_quote(&s, &r, id, false),
        ("PUT", ["quotes", id, "error"]) => put_quote(&s, &r, id, true),
        ("PUT", ["transfers", id]) => put_transfer(&s, &r, id, false),
        ("PUT", ["transfers", id, "error"]) => put_transfer(&s, &r, id, true),
        _ => refuse(
            "parties",
            StatusCode::NOT_FOUND,
            &validate::invalid("3002", "Unknown URI"),
        ),
    }
}

fn get_parties(s: &Arc<Shared>, r: &Request<'_>, id: &str) -> Response {
    if let Err(e) = s.check(r, "parties", true, false) {
        return s.reject("parties", e);
    }
    let segments: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let (Some(id_type), Some(sub)) = (segments.get(1), segments.get(3)) else {
        return lookup_answer(
            s,
            r.path,
            segments.get(1).copied().unwrap_or_default(),
            id,
            None,
        );
    };
    lookup_answer(s, r.path, id_type, id, Some(sub))
}

fn lookup_answer(
    s: &Arc<Shared>,
    path: &str,
    id_type: &str,
    id: &str,
    sub: Option<&str>,
) -> Response {
    let peer = s.config.peer_fsp_id.clone();
    if digits(id) == 2 {
        spawn_deliver(
            s,
            s.config.callback_delay,
            Method::PUT,
            format!("{path}/error"),
            "parties",
            peer,
            Some(error_body("3204", "Party not found")),
            Sign::Genuine,
        );
    } else {
        let mut info = json!({ "partyIdType": id_type, "partyIdentifier": id, "fspId": peer });
        if let Some(sub) = sub {
            if let Some(o) = info.as_object_mut() {
                o.insert("partySubIdOrType".to_owned(), json!(sub));
            }
        }
        let body = json!({ "party": { "partyIdInfo": info, "name": "Mock Payee",
            "personalInfo": { "complexName": { "firstName": "Mock", "lastName": "Payee" } } } });
        spawn_deliver(
            s,
            s.config.callback_delay,
            Method::PUT,
            path.to_owned(),
            "parties",
            peer,
            serde_json::to_vec(&body).ok(),
            Sign::Genuine,
        );
    }
    accepted()
}

fn post_quotes(s: &Arc<Shared>, r: &Request<'_>) -> Response {
    let v = match s
        .check(r, "quotes", true, true)
        .and_then(|v| validate::quotes_post(&v).map(|()| v))
    {
        Ok(v) => v,
        Err(e) => return s.reject("quotes", e),
    };
    if v.pointer("/payer/partyIdInfo/fspId")
        .and_then(Value::as_str)
        != Some(s.config.dfsp_id.as_str())
    {
        return s.reject(
            "quotes",
            validate::invalid(
                "3100",
                "Generic validation error - the payer is not at the sender",
            ),
        );
    }
    let str_at = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let quote_id = str_at("/quoteId");
    let payee_id = str_at("/payee/partyIdInfo/partyIdentifier");
    let peer = s.config.peer_fsp_id.clone();
    if digits(&payee_id) == 2 {
        spawn_deliver(
            s,
            s.config.callback_delay,
            Method::PUT,
            format!("/quotes/{quote_id}/error"),
            "quotes",
            peer,
            Some(error_body("3204", "Party not found")),
            Sign::Genuine,
        );
        return accepted();
    }
    let amount: Option<FspiopMoney> = v
        .get("amount")
        .and_then(|a| serde_json::from_value(a.clone()).ok());
    let Some((amount, money)) = amount.and_then(|a| money_of(&a).map(|m| (a, m))) else {
        return s.reject(
            "quotes",
            validate::invalid("3100", "Generic validation error - amount"),
        );
    };
    let expiration = wire::after(Utc::now(), Duration::from_secs(60));
    let expiration_text = fspiop_datetime(expiration);
    let mut tx = serde_json::Map::new();
    for k in [
        "quoteId",
        "transactionId",
        "transactionType",
        "payee",
        "payer",
        "note",
    ] {
        if let Some(x) = v.get(k) {
            tx.insert(k.to_owned(), x.clone());
        }
    }
    tx.insert("expiration".to_owned(), json!(expiration_text));
    tx.insert("amount".to_owned(), json!(amount));
    let address = ilp::v1_address(
        &peer,
        &str_at("/payee/partyIdInfo/partyIdType"),
        &payee_id,
        None,
    );
    let minor = u64::try_from(money.minor()).unwrap_or(0);
    let q = ilp::quote_ilp(
        s.config.ilp_version,
        &s.peer_key,
        &Value::Object(tx),
        minor,
        expiration,
        &address,
    );
    s.inner().quotes.insert(quote_id.clone(), str_at("/note"));
    let body = json!({
        "transferAmount": amount,
        "payeeFspFee": { "amount": "0", "currency": amount.currency },
        "expiration": expiration_text,
        "ilpPacket": q.packet,
        "condition": q.condition,
    });
    spawn_deliver(
        s,
        s.config.callback_delay,
        Method::PUT,
        format!("/quotes/{quote_id}"),
        "quotes",
        peer,
        serde_json::to_vec(&body).ok(),
        Sign::Genuine,
    );
    accepted()
}

/// Marks a transfer paid, once.
pub(super) fn commit(inner: &mut Inner, transfer_id: &str, peer: &str) {
    let Some(rec) = inner.transfers.get_mut(transfer_id) else {
        return;
    };
    if rec.state == TransferState::Committed {
        return;
    }
    rec.state = TransferState::Committed;
    let (amount, reference) = (rec.amount.clone(), rec.reference.clone());
    let attempt_id = wire::attempt_of(transfer_id, wire::IdPurpose::Transaction)
        .map(|u| u.to_string())
        .unwrap_or_default();
    let p = inner
        .payouts
        .entry(transfer_id.to_owned())
        .or_insert_with(|| Payout {
            direction: "disbursement".to_owned(),
            attempt_id,
            transfer_id: transfer_id.to_owned(),
            reference: reference.clone(),
            amount: amount.amount.clone(),
            currency: amount.currency.clone(),
            count: 0,
        });
    p.count = p.count.saturating_add(1);
    inner.statement.push(StatementLine {
        date: fspiop_datetime(Utc::now()),
        amount: money_of(&amount)
            .map(Money::to_decimal_string)
            .unwrap_or(amount.amount),
        currency: amount.currency,
        direction: "disbursement",
        reference,
        counterparty: peer.to_owned(),
        rail_transaction_id: transfer_id.to_owned(),
        fee: "0".to_owned(),
    });
}

async fn post_transfers(s: &Arc<Shared>, r: &Request<'_>, kill: Option<ConnKill>) -> Response {
    let v = match s
        .check(r, "transfers", true, true)
        .and_then(|v| validate::transfers_post(&v).map(|()| v))
    {
        Ok(v) => v,
        Err(e) => return s.reject("transfers", e),
    };
    let post: wire::TransfersPost = match serde_json::from_value(v.clone()) {
        Ok(p) => p,
        Err(e) => return s.reject("transfers", validate::invalid("3101", e.to_string())),
    };
    let cfg = &s.config;
    if post.payer_fsp != cfg.dfsp_id {
        return s.reject(
            "transfers",
            validate::invalid(
                "3100",
                "Generic validation error - FSPIOP-Source does not match payerFsp",
            ),
        );
    }
    if post.payee_fsp != cfg.peer_fsp_id {
        return s.reject(
            "transfers",
            validate::invalid("3201", "Destination FSP error - unknown payee FSP"),
        );
    }
    if wire::parse_fspiop_datetime(&post.expiration).map_or(true, |e| e <= Utc::now()) {
        return s.reject(
            "transfers",
            validate::invalid(
                "3100",
                "Generic validation error - expiration date is in the past",
            ),
        );
    }
    // As the payee FSP, regenerate the fulfilment from the packet; it must match the condition.
    let packet = ilp::decode_packet(&post.ilp_packet).ok();
    let fulfilment = packet
        .as_ref()
        .and_then(|p| ilp::regenerate_fulfilment(&s.peer_key, &post.ilp_packet, p).ok());
    let (Some(packet), Some(fulfilment)) = (packet, fulfilment) else {
        return s.reject(
            "transfers",
            validate::invalid("3100", "Generic validation error - invalid ILP packet"),
        );
    };
    if !ilp::fulfils(&fulfilment, &post.condition) {
        return s.reject(
            "transfers",
            validate::invalid("3100", "Generic validation error - invalid condition"),
        );
    }
    let money = money_of(&post.amount);
    if money.and_then(|m| u64::try_from(m.minor()).ok()) != Some(packet.amount) {
        return s.reject(
            "transfers",
            validate::invalid(
                "3100",
                "Generic validation error - amount differs from the ILP packet",
            ),
        );
    }
    let tx = ilp::transaction_of(&packet).unwrap_or(Value::Null);
    let scenario = digits(
        tx.pointer("/payee/partyIdInfo/partyIdentifier")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let quote_id = tx
        .get("quoteId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let hash = body_hash(&v);
    let id = post.transfer_id.clone();
    let peer = cfg.peer_fsp_id.clone();
    let hub = cfg.hub_fsp_id.clone();
    let transfer_path = format!("/transfers/{id}");
    {
        let mut inner = s.inner();
        if let Some(rec) = inner.transfers.get(&id).cloned() {
            drop(inner);
            if rec.hash != hash {
                spawn_deliver(
                    s,
                    cfg.callback_delay,
                    Method::PUT,
                    format!("{transfer_path}/error"),
                    "transfers",
                    hub,
                    Some(error_body("3106", "Modified request")),
                    Sign::Genuine,
                );
            } else if !matches!(rec.scenario, 5 | 6 | 8 | 12) {
                // A resend of a finished transfer gets its result again; in flight, nothing.
                match rec.state {
                    TransferState::Committed => spawn_deliver(
                        s,
                        cfg.callback_delay,
                        Method::PUT,
                        transfer_path,
                        "transfers",
                        peer,
                        Some(committed_body(&rec.fulfilment)),
                        Sign::Genuine,
                    ),
                    TransferState::Failed { code, description } => spawn_deliver(
                        s,
                        cfg.callback_delay,
                        Method::PUT,
                        format!("{transfer_path}/error"),
                        "transfers",
                        hub,
                        Some(error_body(&code, &description)),
                        Sign::Genuine,
                    ),
                    TransferState::Pending | TransferState::Aborted => {}
                }
            }
            return accepted();
        }
        if scenario == 9 {
            let n = inner.post_attempts.entry(id.clone()).or_insert(0);
            *n = n.saturating_add(1);
            if *n <= 2 {
                return refuse(
                    "transfers",
                    StatusCode::SERVICE_UNAVAILABLE,
                    &validate::invalid("2003", "Service currently unavailable"),
                );
            }
        }
        let reference = inner.quotes.get(quote_id).cloned().unwrap_or_default();
        let failed = |code: &str, description: &str| TransferState::Failed {
            code: code.to_owned(),
            description: description.to_owned(),
        };
        let state = match scenario {
            1 => failed("4001", "Payer FSP insufficient liquidity"),
            2 => failed("3204", "Party not found"),
            3 => failed("5105", "Payee FSP rejected transaction"),
            6 => TransferState::Aborted,
            11 => failed("3303", "Transfer expired"),
            _ => TransferState::Pending,
        };
        inner.transfers.insert(
            id.clone(),
            TransferRec {
                hash,
                scenario,
                state,
                fulfilment: fulfilment.clone(),
                amount: post.amount.clone(),
                reference,
            },
        );
        if !matches!(scenario, 1 | 2 | 3 | 4 | 6 | 11 | 12) {
            commit(&mut inner, &id, &peer);
        }
    }
    let d = cfg.callback_delay;
    let ok = || Some(committed_body(&fulfilment));
    match scenario {
        1 => spawn_deliver(
            s,
            d,
            Method::PUT,
            format!("{transfer_path}/error"),
            "transfers",
            hub,
            Some(error_body("4001", "Payer FSP insufficient liquidity")),
            Sign::Genuine,
        ),
        2 => spawn_deliver(
            s,
            d,
            Method::PUT,
            format!("{transfer_path}/error"),
            "transfers",
            peer,
            Some(error_body("3204", "Party not found")),
            Sign::Genuine,
        ),
        3 => spawn_deliver(
            s,
            d,
            Method::PUT,
            format!("{transfer_path}/error"),
            "transfers",
            peer,
            Some(error_body("5105", "Payee FSP rejected transaction")),
            Sign::Genuine,
        ),
        4 => {
            let s2 = s.clone();
            let delay = cfg.pending_delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let fulfilment = {
                    let mut inner = s2.inner();
                    commit(&mut inner, &id, &peer);
                    inner
                        .transfers
                        .get(&id)
                        .map(|r| r.fulfilment.clone())
                        .unwrap_or_default()
                };
                deliver(
                    &s2,
                    Method::PUT,
                    transfer_path,
                    "transfers",
                    &peer,
                    Some(committed_body(&fulfilment)),
                    Sign::Genuine,
                )
                .await;
            });
        }
        5 | 6 | 12 => {}
        7 => {
            // The same body three times, as a resending payee does.
            let body = committed_body(&fulfilment);
            for i in 0..3u32 {
                spawn_deliver(
                    s,
                    d.saturating_mul(i.saturating_add(1)),
                    Method::PUT,
                    transfer_path.clone(),
                    "transfers",
                    peer.clone(),
                    Some(body.clone()),
                    Sign::Genuine,
                );
            }
        }
        8 => {
            if cfg.jws.is_some() {
                spawn_deliver(
                    s,
                    d,
                    Method::PUT,
                    transfer_path,
                    "transfers",
                    peer,
                    ok(),
                    Sign::Forged,
                );
            } else {
                spawn_deliver(
                    s,
                    d,
                    Method::PUT,
                    transfer_path,
                    "transfers",
                    "roguefsp".to_owned(),
                    ok(),
                    Sign::Genuine,
                );
            }
        }
        10 => {
            // Paid, then the connection drops before the answer.
            if let Some(k) = kill {
                k.0.notify_one();
                std::future::pending::<()>().await;
            }
        }
        11 => {
            spawn_deliver(
                s,
                d,
                Method::PUT,
                format!("{transfer_path}/error"),
                "transfers",
                hub,
                Some(error_body("3303", "Transfer expired")),
                Sign::Genuine,
            );
            let s2 = s.clone();
            let delay = cfg.late_success_delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let fulfilment = {
                    let mut inner = s2.inner();
                    commit(&mut inner, &id, &peer);
                    inner
                        .transfers
                        .get(&id)
                        .map(|r| r.fulfilment.clone())
                        .unwrap_or_default()
                };
                deliver(
                    &s2,
                    Method::PUT,
                    transfer_path,
                    "transfers",
                    &peer,
                    Some(committed_body(&fulfilment)),
                    Sign::Genuine,
                )
                .await;
            });
        }
        _ => spawn_deliver(
            s,
            d,
            Method::PUT,
            transfer_path,
            "transfers",
            peer,
            ok(),
            Sign::Genuine,
        ),
    }
    accepted()
}

fn get_transfer(s: &Arc<Shared>, r: &Request<'_>, id: &str) -> Response {
    if let Err(e) = s.check(r, "transfers", true, false) {
        return s.reject("transfers", e);
    }
    let rec = s.inner().transfers.get(id).cloned();
    let path = format!("/transfers/{id}");
    let hub = s.config.hub_fsp_id.clone();
    let d = s.config.callback_delay;
    match rec {
        None => spawn_deliver(
            s,
            d,
            Method::PUT,
            format!("{path}/error"),
            "transfers",
            hub,
            Some(error_body("3208", "Transfer ID not found")),
            Sign::Genuine,
        ),
        Some(rec) if rec.scenario == 12 => {}
        Some(rec) => {
            let (p, body) = match rec.state {
                TransferState::Committed => (path, committed_body(&rec.fulfilment)),
                TransferState::Aborted => (path, serde_json::to_vec(&json!({ "completedTimestamp": fspiop_datetime(Utc::now()), "transferState": "ABORTED" })).unwrap_or_default()),
                TransferState::Pending => (path, serde_json::to_vec(&json!({ "transferState": "RESERVED" })).unwrap_or_default()),
                TransferState::Failed { code, description } => (format!("{path}/error"), error_body(&code, &description)),
            };
            spawn_deliver(
                s,
                d,
                Method::PUT,
                p,
                "transfers",
                hub,
                Some(body),
                Sign::Genuine,
            );
        }
    }
    accepted()
}

fn state_body(state: &RequestState, transaction_id: &str) -> (bool, Vec<u8>) {
    let put = |v: Value| (false, serde_json::to_vec(&v).unwrap_or_default());
    match state {
        RequestState::Received => put(json!({ "transactionRequestState": "RECEIVED" })),
        RequestState::Accepted => put(json!({
            "transactionId": transaction_id,
            "transactionRequestState": "ACCEPTED"
        })),
        RequestState::Rejected => put(json!({ "transactionRequestState": "REJECTED" })),
        RequestState::Failed { code, description } => (true, error_body(code, description)),
    }
}

/// Tells Railgate where a request stands (`PUT /transactionRequests/{id}`, or `…/error`).
fn send_request_state(s: &Arc<Shared>, delay: Duration, trid: &str, sign: Sign, source: String) {
    let Some(rec) = s.inner().requests.get(trid).cloned() else {
        return;
    };
    let (is_error, body) = state_body(&rec.state, &rec.transaction_id);
    let mut path = format!("/transactionRequests/{trid}");
    if is_error {
        path.push_str("/error");
    }
    spawn_deliver(
        s,
        delay,
        Method::PUT,
        path,
        "transactionRequests",
        source,
        Some(body),
        sign,
    );
}

fn set_request_state(s: &Arc<Shared>, trid: &str, state: RequestState) {
    if let Some(rec) = s.inner().requests.get_mut(trid) {
        rec.state = state;
    }
}

fn fail_request(s: &Arc<Shared>, delay: Duration, trid: &str, code: &str, description: &str) {
    set_request_state(
        s,
        trid,
        RequestState::Failed {
            code: code.to_owned(),
            description: description.to_owned(),
        },
    );
    send_request_state(s, delay, trid, Sign::Genuine, s.config.peer_fsp_id.clone());
}

/// The payer approves after `delay`: then its FSP quotes (to Railgate, as payee FSP), and pays
/// once the quote comes back. At most once per request.
fn pay_request(s: &Arc<Shared>, trid: &str, delay: Duration) {
    {
        let mut inner = s.inner();
        let Some(rec) = inner.requests.get_mut(trid) else {
            return;
        };
        if rec.paying {
            return;
        }
        rec.paying = true;
    }
    let (s, trid) = (s.clone(), trid.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let Some(quote) = approve(&s, &trid) else {
            return;
        };
        let peer = s.config.peer_fsp_id.clone();
        deliver(
            &s,
            Method::POST,
            "/quotes".to_owned(),
            "quotes",
            &peer,
            Some(quote),
            Sign::Genuine,
        )
        .await;
    });
}

/// The payer's approval: the request is ACCEPTED (unless its FSP already answered an error),
/// and the quote its FSP sends is built and remembered.
fn approve(s: &Arc<Shared>, trid: &str) -> Option<Vec<u8>> {
    let mut inner = s.inner();
    let rec = inner.requests.get_mut(trid)?;
    if !matches!(rec.state, RequestState::Failed { .. }) {
        rec.state = RequestState::Accepted;
    }
    let (v, scenario, transaction_id) =
        (rec.body.clone(), rec.scenario, rec.transaction_id.clone());
    let str_at = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let amount: FspiopMoney = serde_json::from_value(v.get("amount")?.clone()).ok()?;
    let c = Collection {
        copies: if scenario == 7 { 3 } else { 1 },
        quote_id: id_string(Uuid::new_v4()),
        // The payer FSP's transfer reuses the transaction id, as SDK-based FSPs do.
        transfer_id: transaction_id,
        transaction_request_id: Some(trid.to_owned()),
        reference: str_at("/payee/partyIdInfo/partySubIdOrType"),
        amount,
        payer_msisdn: str_at("/payer/partyIdentifier"),
        condition: None,
    };
    let mut payee = v.get("payee").cloned().unwrap_or(Value::Null);
    if let Some(o) = payee.as_object_mut() {
        o.remove("name");
    }
    let mut quote = json!({
        "quoteId": c.quote_id,
        "transactionId": c.transfer_id,
        "transactionRequestId": trid,
        "payee": payee,
        "payer": { "partyIdInfo": v.get("payer").cloned().unwrap_or(Value::Null) },
        "amountType": "RECEIVE",
        "amount": c.amount,
        "transactionType": v.get("transactionType").cloned().unwrap_or(Value::Null),
        "note": v.get("note").cloned().unwrap_or(json!("premium")),
        "expiration": fspiop_datetime(wire::after(Utc::now(), Duration::from_secs(60))),
    });
    if scenario == 13 {
        // The field is optional: only the transactionId links the quote to the request.
        if let Some(o) = quote.as_object_mut() {
            o.remove("transactionRequestId");
        }
    }
    inner.collections.insert(c.quote_id.clone(), c);
    serde_json::to_vec(&quote).ok()
}

/// `POST /transactionRequests`: the mock is the payer's FSP. Idempotent by id (API definition
/// §3.2.5): the same body again is ignored in flight or answered with the current state, another
/// body under the same id gets `3106`.
async fn post_transaction_requests(
    s: &Arc<Shared>,
    r: &Request<'_>,
    kill: Option<ConnKill>,
) -> Response {
    let v = match s
        .check(r, "transactionRequests", true, true)
        .and_then(|v| validate::transaction_requests_post(&v).map(|()| v))
    {
        Ok(v) => v,
        Err(e) => return s.reject("transactionRequests", e),
    };
    if v.pointer("/payee/partyIdInfo/fspId")
        .and_then(Value::as_str)
        != Some(s.config.dfsp_id.as_str())
    {
        return s.reject(
            "transactionRequests",
            validate::invalid(
                "3100",
                "Generic validation error - the payee is not at the sender",
            ),
        );
    }
    let trid = v
        .get("transactionRequestId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let scenario = digits(
        v.pointer("/payer/partyIdentifier")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let hash = body_hash(&v);
    let peer = s.config.peer_fsp_id.clone();
    let d = s.config.callback_delay;
    {
        let mut inner = s.inner();
        if let Some(rec) = inner.requests.get(&trid).cloned() {
            drop(inner);
            if rec.hash != hash {
                spawn_deliver(
                    s,
                    d,
                    Method::PUT,
                    format!("/transactionRequests/{trid}/error"),
                    "transactionRequests",
                    peer,
                    Some(error_body("3106", "Modified request")),
                    Sign::Genuine,
                );
            } else if !matches!(rec.state, RequestState::Received) && rec.scenario != 12 {
                send_request_state(s, d, &trid, Sign::Genuine, peer);
            }
            return accepted();
        }
        if scenario == 9 {
            let n = inner.post_attempts.entry(trid.clone()).or_insert(0);
            *n = n.saturating_add(1);
            if *n <= 2 {
                // Refused before anything is recorded: nothing moved.
                return refuse(
                    "transactionRequests",
                    StatusCode::SERVICE_UNAVAILABLE,
                    &validate::invalid("2003", "Service currently unavailable"),
                );
            }
        }
        inner.requests.insert(
            trid.clone(),
            RequestRec {
                hash,
                scenario,
                state: if scenario == 6 {
                    // The payer declines, and its FSP never says so unless asked.
                    RequestState::Rejected
                } else {
                    RequestState::Received
                },
                transaction_id: id_string(Uuid::new_v4()),
                body: v,
                paying: false,
            },
        );
    }
    let received = || send_request_state(s, d, &trid, Sign::Genuine, peer.clone());
    let later = d.saturating_mul(3);
    match scenario {
        1 => {
            received();
            fail_request(s, later, &trid, "4001", "Payer FSP insufficient liquidity");
        }
        2 => fail_request(s, later, &trid, "3204", "Party not found"),
        3 => {
            received();
            fail_request(
                s,
                later,
                &trid,
                "4101",
                "Payer rejected transaction request",
            );
        }
        4 => {
            received();
            pay_request(s, &trid, s.config.pending_delay);
        }
        // Silent until asked.
        5 | 6 | 12 => {}
        8 => {
            // Someone else claims the payer declined: bad signature, or an FSP not in the scheme.
            let body = serde_json::to_vec(&json!({ "transactionRequestState": "REJECTED" }))
                .unwrap_or_default();
            let path = format!("/transactionRequests/{trid}");
            if s.config.jws.is_some() {
                spawn_deliver(
                    s,
                    d,
                    Method::PUT,
                    path,
                    "transactionRequests",
                    peer,
                    Some(body),
                    Sign::Forged,
                );
            } else {
                spawn_deliver(
                    s,
                    d,
                    Method::PUT,
                    path,
                    "transactionRequests",
                    "roguefsp".to_owned(),
                    Some(body),
                    Sign::Genuine,
                );
            }
        }
        10 => {
            // Recorded, then the connection drops before the answer; silent until asked.
            if let Some(k) = kill {
                k.0.notify_one();
                std::future::pending::<()>().await;
            }
        }
        13 => {
            // Accepted at once, naming the transaction it creates; the quote that follows
            // leaves out the transactionRequestId.
            if let Some(rec) = s.inner().requests.get_mut(&trid) {
                rec.state = RequestState::Accepted;
            }
            received();
            pay_request(s, &trid, later);
        }
        11 => {
            fail_request(s, d, &trid, "4101", "Payer rejected transaction request");
            // …and the payer pays all the same, later.
            pay_request(s, &trid, s.config.late_success_delay);
        }
        _ => {
            received();
            pay_request(s, &trid, later);
        }
    }
    accepted()
}

/// `GET /transactionRequests/{id}`: the payer FSP's answer is the request's state. A payer FSP
/// that stayed silent (05, 08, 10) reports the payer's approval now, and pays; 12 never answers.
fn get_transaction_request(s: &Arc<Shared>, r: &Request<'_>, id: &str) -> Response {
    if let Err(e) = s.check(r, "transactionRequests", true, false) {
        return s.reject("transactionRequests", e);
    }
    let peer = s.config.peer_fsp_id.clone();
    let d = s.config.callback_delay;
    let rec = s.inner().requests.get(id).cloned();
    match rec {
        None => spawn_deliver(
            s,
            d,
            Method::PUT,
            format!("/transactionRequests/{id}/error"),
            "transactionRequests",
            peer,
            Some(error_body("3206", "Transaction request ID not found")),
            Sign::Genuine,
        ),
        Some(rec) if rec.scenario == 12 => {}
        Some(rec) => {
            if matches!(rec.scenario, 5 | 8 | 10) && !rec.paying {
                set_request_state(s, id, RequestState::Accepted);
                send_request_state(s, d, id, Sign::Genuine, peer);
                pay_request(s, id, d.saturating_mul(2));
            } else {
                send_request_state(s, d, id, Sign::Genuine, peer);
            }
        }
    }
    accepted()
}

/// Railgate answers the peer's lookup of the scheme (a pushed payment): quote next.
fn put_parties(s: &Arc<Shared>, r: &Request<'_>) -> Response {
    let is_error = r.path.ends_with("/error");
    let v = match s.check(r, "parties", false, true).and_then(|v| {
        if is_error {
            validate::error_information(&v)
        } else {
            validate::parties_put(&v)
        }
        .map(|()| v)
    }) {
        Ok(v) => v,
        Err(e) => return s.reject("parties", e),
    };
    let key = r.path.trim_end_matches("/error").to_owned();
    let Some(c) = s.inner().pushes.remove(&key) else {
        return StatusCode::OK.into_response();
    };
    if is_error {
        s.inner().collected.push(Collected {
            transfer_id: c.transfer_id,
            transaction_request_id: None,
            reference: c.reference,
            amount: c.amount.amount,
            currency: c.amount.currency,
            committed: false,
            error_code: v
                .pointer("/errorInformation/errorCode")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
        return StatusCode::OK.into_response();
    }
    let quote = json!({
        "quoteId": c.quote_id,
        "transactionId": c.transfer_id,
        "payee": { "partyIdInfo": v.pointer("/party/partyIdInfo").cloned().unwrap_or(Value::Null) },
        "payer": { "partyIdInfo": { "partyIdType": "MSISDN", "partyIdentifier": c.payer_msisdn, "fspId": s.config.peer_fsp_id }, "name": "Mock Payer" },
        "amountType": "SEND",
        "amount": c.amount,
        "transactionType": { "scenario": "PAYMENT", "initiator": "PAYER", "initiatorType": "CONSUMER" },
        "note": c.reference,
        "expiration": fspiop_datetime(wire::after(Utc::now(), Duration::from_secs(60))),
    });
    s.inner().collections.insert(c.quote_id.clone(), c);
    spawn_deliver(
        s,
        s.config.callback_delay,
        Method::POST,
        "/quotes".to_owned(),
        "quotes",
        s.config.peer_fsp_id.clone(),
        serde_json::to_vec(&quote).ok(),
        Sign::Genuine,
    );
    StatusCode::OK.into_response()
}

fn record_refusal(s: &Arc<Shared>, c: Collection, v: &Value) {
    s.inner().collected.push(Collected {
        transfer_id: c.transfer_id,
        transaction_request_id: c.transaction_request_id,
        reference: c.reference,
        amount: c.amount.amount,
        currency: c.amount.currency,
        committed: false,
        error_code: v
            .pointer("/errorInformation/errorCode")
            .and_then(Value::as_str)
            .map(str::to_owned),
    });
}

/// Railgate's terms for the peer's quote: the peer pays.
fn put_quote(s: &Arc<Shared>, r: &Request<'_>, id: &str, is_error: bool) -> Response {
    let v = match s.check(r, "quotes", false, true).and_then(|v| {
        if is_error {
            validate::error_information(&v)
        } else {
            validate::quotes_put(&v)
        }
        .map(|()| v)
    }) {
        Ok(v) => v,
        Err(e) => return s.reject("quotes", e),
    };
    let Some(mut c) = s.inner().collections.remove(id) else {
        return StatusCode::OK.into_response();
    };
    if is_error {
        record_refusal(s, c, &v);
        return StatusCode::OK.into_response();
    }
    let str_at = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    c.condition = Some(str_at("/condition"));
    let transfer = json!({
        "transferId": c.transfer_id,
        "payeeFsp": s.config.dfsp_id,
        "payerFsp": s.config.peer_fsp_id,
        "amount": v.get("transferAmount").cloned().unwrap_or(Value::Null),
        "ilpPacket": str_at("/ilpPacket"),
        "condition": str_at("/condition"),
        "expiration": fspiop_datetime(wire::after(Utc::now(), Duration::from_secs(30))),
    });
    let copies = c.copies;
    s.inner().collections.insert(c.transfer_id.clone(), c);
    // Scenario 07 resends the same bytes, as a payer FSP that heard nothing back would.
    let body = serde_json::to_vec(&transfer).ok();
    for i in 0..copies {
        spawn_deliver(
            s,
            s.config.callback_delay.saturating_mul(i.saturating_add(1)),
            Method::POST,
            "/transfers".to_owned(),
            "transfers",
            s.config.peer_fsp_id.clone(),
            body.clone(),
            Sign::Genuine,
        );
    }
    StatusCode::OK.into_response()
}

/// Railgate's fulfilment for the peer's transfer: the collection is done.
fn put_transfer(s: &Arc<Shared>, r: &Request<'_>, id: &str, is_error: bool) -> Response {
    let v = match s.check(r, "transfers", false, true).and_then(|v| {
        if is_error {
            validate::error_information(&v)
        } else {
            validate::transfers_put(&v)
        }
        .map(|()| v)
    }) {
        Ok(v) => v,
        Err(e) => return s.reject("transfers", e),
    };
    let Some(c) = s.inner().collections.remove(id) else {
        return StatusCode::OK.into_response();
    };
    if is_error {
        record_refusal(s, c, &v);
        return StatusCode::OK.into_response();
    }
    let fulfilment = v
        .get("fulfilment")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let committed = v.get("transferState").and_then(Value::as_str) == Some("COMMITTED")
        && c.condition
            .as_deref()
            .is_some_and(|cond| ilp::fulfils(fulfilment, cond));
    let mut inner = s.inner();
    if committed {
        let currency: Option<Currency> = c.amount.currency.parse().ok();
        inner.statement.push(StatementLine {
            date: fspiop_datetime(Utc::now()),
            amount: money_of(&c.amount)
                .map(Money::to_decimal_string)
                .unwrap_or_else(|| c.amount.amount.clone()),
            currency: currency
                .map(|c| c.code().to_owned())
                .unwrap_or_else(|| c.amount.currency.clone()),
            direction: "collection",
            reference: c.reference.clone(),
            counterparty: s.config.peer_fsp_id.clone(),
            rail_transaction_id: c.transfer_id.clone(),
            fee: "0".to_owned(),
        });
        let attempt_id = c
            .transaction_request_id
            .as_deref()
            .and_then(|t| wire::attempt_of(t, wire::IdPurpose::TransactionRequest))
            .map(|u| u.to_string())
            .unwrap_or_default();
        let p = inner
            .payouts
            .entry(c.transfer_id.clone())
            .or_insert_with(|| Payout {
                direction: "collection".to_owned(),
                attempt_id,
                transfer_id: c.transfer_id.clone(),
                reference: c.reference.clone(),
                amount: c.amount.amount.clone(),
                currency: c.amount.currency.clone(),
                count: 0,
            });
        p.count = p.count.saturating_add(1);
    }
    inner.collected.push(Collected {
        transfer_id: c.transfer_id,
        transaction_request_id: c.transaction_request_id,
        reference: c.reference,
        amount: c.amount.amount,
        currency: c.amount.currency,
        committed,
        error_code: None,
    });
    StatusCode::OK.into_response()
}
