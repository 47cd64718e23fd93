//! Sandbox servers for the Mifos rails, in-process on their own ports, speaking the real wire
//! formats: `phee` (channel, operations app and bulk processor on one port) and `fineract`.
//!
//! Both follow the gateway's scenario table, chosen by the last two digits of the party's
//! identifier (PH-EE: the payee's, or the payer's for collections; Fineract: the savings
//! account id); each module documents what every scenario looks like on its rail. PH-EE can be
//! served over TLS requiring client certificates, behind its Keycloak (`keycloak`).

pub mod control;
pub mod fineract;
pub mod keycloak;
pub mod phee;

pub use fineract::{FineractMock, FineractMockConfig};
pub use phee::{PhEeMock, PhEeMockConfig};
