//! The command line: one binary, one subcommand per role.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "railgate",
    version,
    about = "Payment-integration gateway between an insurance core and payment rails"
)]
pub struct Cli {
    /// TOML configuration file (every key is documented in the README); accepted before or
    /// after the subcommand. `serve`, `migrate`, `report` and `keys` read their database from it
    /// (or from DATABASE_URL) and refuse to run without one.
    #[arg(long, short, env = "RAILGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (configuration file plus environment).
    Serve,
    /// Run the gateway with every mock rail on loopback and an embedded store: zero set-up.
    /// (Builds with the `sandbox` feature, the default, only.)
    #[cfg(feature = "sandbox")]
    Sandbox {
        /// API port (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// SQLite file to keep; a temporary one is used otherwise.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Use this demo API key instead of generating one.
        #[arg(long)]
        api_key: Option<String>,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Write the reconciliation report for a period to a file (CSV or printable HTML).
    Report {
        /// First day (YYYY-MM-DD).
        #[arg(long)]
        from: String,
        /// Last day (YYYY-MM-DD), included.
        #[arg(long)]
        to: String,
        /// csv, html or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// For CSV: daily, breaks or unknown.
        #[arg(long)]
        section: Option<String>,
        /// Only this client (by name); every client otherwise.
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        rail: Option<String>,
        #[arg(long)]
        programme: Option<String>,
        /// Where to write the report.
        #[arg(long)]
        out: PathBuf,
    },
    /// Create, list or revoke API keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Submit a payroll file to a running gateway and follow it.
    Payroll {
        #[command(subcommand)]
        action: PayrollAction,
    },
    /// Run the generic mock rail on its own (for a gateway started elsewhere).
    #[cfg(feature = "sandbox")]
    MockRail {
        #[arg(long, default_value_t = 9100)]
        port: u16,
        /// The HMAC secret its callbacks are signed with. Env: RAILGATE_MOCK_SECRET.
        #[arg(long, env = "RAILGATE_MOCK_SECRET")]
        secret: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PayrollAction {
    /// Upload a payroll file (CSV, or JSON by its .json extension) to a running gateway and
    /// show its progress until every item is final.
    Submit {
        /// The payroll file.
        file: PathBuf,
        /// The gateway's base URL.
        #[arg(long, env = "RAILGATE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API key with payments:write and payments:read. Env: RAILGATE_API_KEY.
        #[arg(long, env = "RAILGATE_API_KEY")]
        key: String,
        /// Keep the items waiting for release (by the API or by openIMIS) instead of paying.
        #[arg(long)]
        hold: bool,
        /// Currency of CSV rows without a currency column.
        #[arg(long)]
        currency: Option<String>,
        /// A name for the payroll.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key for a client (created if new); the key is printed once.
    Create {
        #[arg(long)]
        client: String,
        /// Comma-separated: payments:write, payments:read, recon:write, reports:read, admin, operator.
        #[arg(long, default_value = "payments:write,payments:read")]
        scopes: String,
        #[arg(long)]
        label: Option<String>,
    },
    List,
    /// Revoke a key by its id or prefix.
    Revoke {
        id: String,
    },
}
