//! Could money have left? The one reading of a failed HTTP exchange with a rail.
//!
//! A request that never reached the rail can be sent again under the same id; one that may
//! have reached it cannot, until the rail has been asked (an inquiry, a statement). Every
//! adapter reads its transport errors here, so they all draw that line in the same place:
//!
//! - the connection was never made (refused, unreachable, DNS, a connect timeout), or the TLS
//!   handshake failed (our check of the rail's certificate, or the rail refusing ours): the
//!   rail read nothing, [`Reach::NotSent`];
//! - anything after that (a timeout waiting for the answer, a connection dropped mid-way, a
//!   body that could not be read): the rail may have acted, [`Reach::MaybeSent`];
//! - the request could not even be built: nothing was sent, and it never will be.
//!
//! With TLS 1.3 the client finishes its side of the handshake before the server has checked
//! the client's certificate, so a server refusing an expired certificate is heard only while
//! the request is being written or its answer read. Its alert still proves the server never
//! read the request (a TLS server reads no application data before the handshake is done), so
//! certificate alerts count as not sent wherever they are heard.

use crate::RailError;
use rustls::AlertDescription;
use std::error::Error as StdError;

/// Whether a failed request can have reached the rail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The rail cannot have read it: sending it again is safe.
    NotSent,
    /// The rail may have read and acted on it.
    MaybeSent,
}

/// A failed exchange, read: whether it can have reached the rail, and why it failed, in words
/// fit for a log or an operator (never the URL, which may carry a party's identifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    pub reach: Reach,
    /// The request could not be built (a bad header, an unusable URL): it never will be.
    pub unbuildable: bool,
    /// A TLS failure (certificates, handshake).
    pub tls: bool,
    pub cause: String,
}

impl SendFailure {
    /// The error for a request that moves money (or may): not sent is retryable, maybe sent
    /// is unknown. `peer` names the other side in the message ("rail mmapi-tz", "Daraja").
    pub fn into_rail_error(self, peer: &str) -> RailError {
        let text = format!("{peer}: {}", self.cause);
        if self.unbuildable {
            RailError::Permanent(text)
        } else {
            match self.reach {
                Reach::NotSent => RailError::Retryable(format!("{text}; nothing was sent")),
                Reach::MaybeSent => RailError::Unknown(format!("{text}; the rail may have acted")),
            }
        }
    }

    /// The error for a request that moves no money (a lookup, a read, a token): any transport
    /// failure may be retried, only an unbuildable request is permanent.
    pub fn into_read_error(self, peer: &str) -> RailError {
        let text = format!("{peer}: {}", self.cause);
        if self.unbuildable {
            RailError::Permanent(text)
        } else {
            RailError::Retryable(text)
        }
    }
}

/// Reads a failed `reqwest` exchange.
pub fn send_failure(e: &reqwest::Error) -> SendFailure {
    if let Some(tls) = tls_cause(e) {
        // Any TLS failure the connector reports comes from the handshake; after it, only the
        // alerts `handshake_alert` accepts prove the request unread.
        let reach = if e.is_connect() || tls.in_handshake {
            Reach::NotSent
        } else {
            Reach::MaybeSent
        };
        return SendFailure {
            reach,
            unbuildable: false,
            tls: true,
            cause: format!("TLS: {}", tls.text),
        };
    }
    let detail = innermost(e);
    let (reach, what) = if e.is_builder() {
        (Reach::NotSent, "the request could not be built")
    } else if e.is_connect() {
        (Reach::NotSent, "could not connect")
    } else if e.is_timeout() {
        (Reach::MaybeSent, "no answer in time")
    } else if e.is_body() || e.is_decode() {
        (Reach::MaybeSent, "the answer could not be read")
    } else {
        (Reach::MaybeSent, "the exchange broke off")
    };
    SendFailure {
        reach,
        unbuildable: e.is_builder(),
        tls: false,
        cause: match detail {
            Some(d) => format!("{what} ({d})"),
            None => what.to_owned(),
        },
    }
}

/// [`send_failure`] as the error of a request that moves money (see
/// [`SendFailure::into_rail_error`]).
pub fn send_error(e: &reqwest::Error, peer: &str) -> RailError {
    send_failure(e).into_rail_error(peer)
}

/// [`send_failure`] as the error of a request that moves no money (see
/// [`SendFailure::into_read_error`]).
pub fn read_error(e: &reqwest::Error, peer: &str) -> RailError {
    send_failure(e).into_read_error(peer)
}

struct TlsCause {
    in_handshake: bool,
    text: String,
}

/// The rustls error somewhere in the chain. `io::Error` hides the error it wraps from
/// `source()` (it returns the wrapped error's own source), so each one is opened by hand.
/// Bounded: a chain is a handful of links, and each step goes one link deeper.
fn tls_cause(e: &(dyn StdError + 'static)) -> Option<TlsCause> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(describe_tls(t));
        }
        next = match err.downcast_ref::<std::io::Error>() {
            // Connectors wrap an io::Error in another; open each in turn.
            Some(io) => io.get_ref().map(|inner| {
                let inner: &(dyn StdError + 'static) = inner;
                inner
            }),
            None => err.source(),
        };
    }
    None
}

fn describe_tls(e: &rustls::Error) -> TlsCause {
    use rustls::{CertificateError as C, Error as E};
    let (in_handshake, text) = match e {
        E::InvalidCertificate(c) => (
            true,
            match c {
                C::UnknownIssuer => {
                    "the rail's certificate is not signed by a trusted CA (configure the rail's CA bundle)".to_owned()
                }
                C::Expired | C::ExpiredContext { .. } => "the rail's certificate has expired".to_owned(),
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "the rail's certificate is not valid yet".to_owned()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "the rail's certificate does not name the host in its URL".to_owned()
                }
                C::ApplicationVerificationFailure => {
                    "the rail's certificate does not match the pinned SHA-256".to_owned()
                }
                other => format!("the rail's certificate was refused: {other:?}"),
            },
        ),
        E::AlertReceived(a) => {
            let ours = match a {
                AlertDescription::CertificateExpired => {
                    Some("the rail refused our client certificate: it has expired")
                }
                AlertDescription::CertificateRequired => {
                    Some("the rail requires a client certificate and none is configured")
                }
                AlertDescription::UnknownCA => Some(
                    "the rail refused our client certificate: not signed by a CA it trusts",
                ),
                AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateUnknown
                | AlertDescription::AccessDenied => Some("the rail refused our client certificate"),
                _ => None,
            };
            let handshake = ours.is_some()
                || matches!(
                    a,
                    AlertDescription::HandshakeFailure
                        | AlertDescription::ProtocolVersion
                        | AlertDescription::InsufficientSecurity
                        | AlertDescription::NoApplicationProtocol
                        | AlertDescription::UnrecognisedName
                );
            (
                handshake,
                match ours {
                    Some(t) => format!("{t} (alert {a:?})"),
                    None => format!("the rail ended the connection (alert {a:?})"),
                },
            )
        }
        E::NoCertificatesPresented => (true, "the rail presented no certificate".to_owned()),
        E::PeerIncompatible(p) => (true, format!("no common TLS parameters: {p:?}")),
        E::InappropriateHandshakeMessage { .. } | E::UnsupportedNameType => {
            (true, format!("handshake failed: {e}"))
        }
        other => (false, other.to_string()),
    };
    TlsCause { in_handshake, text }
}

/// The last error in the chain: what the operating system or the peer actually said
/// ("Connection refused (os error 111)"), never reqwest's own line with the URL.
fn innermost(e: &reqwest::Error) -> Option<String> {
    let mut last: Option<&(dyn StdError + 'static)> = None;
    let mut next = e.source();
    while let Some(err) = next {
        last = Some(err);
        next = err.source();
    }
    last.map(|l| l.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_alerts_are_handshake_failures() {
        for (alert, words) in [
            (AlertDescription::CertificateExpired, "expired"),
            (
                AlertDescription::CertificateRequired,
                "requires a client certificate",
            ),
            (AlertDescription::UnknownCA, "not signed by a CA it trusts"),
            (
                AlertDescription::BadCertificate,
                "refused our client certificate",
            ),
        ] {
            let t = describe_tls(&rustls::Error::AlertReceived(alert));
            assert!(t.in_handshake, "{alert:?}");
            assert!(t.text.contains(words), "{}", t.text);
        }
        let after = describe_tls(&rustls::Error::AlertReceived(AlertDescription::DecodeError));
        assert!(!after.in_handshake);
    }

    #[test]
    fn the_chain_is_opened_through_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let t = tls_cause(&io).map(|t| t.text).unwrap_or_default();
        assert!(t.contains("not signed by a trusted CA"), "{t}");
    }

    #[test]
    fn a_read_never_counts_as_unknown() {
        let f = SendFailure {
            reach: Reach::MaybeSent,
            unbuildable: false,
            tls: false,
            cause: "no answer in time".into(),
        };
        assert!(matches!(
            f.clone().into_read_error("rail x"),
            RailError::Retryable(_)
        ));
        assert!(
            matches!(f.into_rail_error("rail x"), RailError::Unknown(m) if m.starts_with("rail x: no answer"))
        );
    }
}
