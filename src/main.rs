//! `railgate`: read the command, start the role.

use clap::Parser;
use railgate::cli::{Cli, Command, KeysAction, PayrollAction};
use railgate::config::Config;
#[cfg(feature = "sandbox")]
use railgate::sandbox;
use railgate::{app, store, telemetry};
use std::path::Path;
use std::process::ExitCode;

/// mimalloc: fast with many threads and short-lived allocations, as the gateway's are.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logs();
    match run(cli.config.as_deref(), cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("railgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Option<&Path>, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let cfg = Config::load(config)?;
            let traces = telemetry::start_traces(&cfg.telemetry)?;
            let running = app::start(cfg, None).await?;
            let stop = running.stop_token();
            tokio::spawn(async move {
                app::shutdown_signal().await;
                tracing::info!("Shutting down: draining in-flight work");
                stop.cancel();
            });
            running.wait().await;
            if let Some(traces) = traces {
                traces.shutdown();
            }
        }
        #[cfg(feature = "sandbox")]
        Command::Sandbox { port, db, api_key } => {
            let sb = sandbox::start(sandbox::SandboxOptions { port, db, api_key }).await?;
            println!(
                "{}",
                sandbox::banner(
                    &sb.gateway.base_url(),
                    &sb.api_key,
                    &sb.rails.mock.base_url()
                )
            );
            println!(
                "{}",
                sandbox::mojaloop_banner(&sb.rails.mojaloop.base_url())
            );
            println!("{}", sb.rails.mifos_bank.banner());
            let stop = sb.gateway.stop_token();
            tokio::spawn(async move {
                app::shutdown_signal().await;
                stop.cancel();
            });
            sb.gateway.wait().await;
        }
        Command::Migrate => {
            let cfg = Config::load(config)?;
            let db = store::Db::connect(cfg.database()?, 1).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Command::Report {
            from,
            to,
            format,
            section,
            client,
            rail,
            programme,
            out,
        } => {
            let cfg = Config::load(config)?;
            let db = store::Db::connect(cfg.database()?, 2).await?;
            db.migrate().await?;
            let client_id = match client {
                Some(name) => Some(
                    store::keys::find_client(&db, &name)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no client named '{name}'"))?,
                ),
                None => None,
            };
            let q = railgate::api::recon::ReportQuery {
                from: Some(from),
                to: Some(to),
                rail,
                programme,
                format: Some(format),
                section,
            };
            let (rq, format) = railgate::api::recon::report_query(&q, client_id)
                .map_err(|p| anyhow::anyhow!("{}", p.detail_text()))?;
            let text = railgate::recon::render::write(&db, &rq, format).await?;
            std::fs::write(&out, text)?;
            println!(
                "report {} to {} written to {}",
                rq.from,
                rq.to,
                out.display()
            );
        }
        Command::Keys { action } => {
            let cfg = Config::load(config)?;
            let db = store::Db::connect(cfg.database()?, 1).await?;
            db.migrate().await?;
            keys_command(&db, action).await?;
        }
        Command::Payroll {
            action:
                PayrollAction::Submit {
                    file,
                    url,
                    key,
                    hold,
                    currency,
                    name,
                },
        } => {
            let opts = railgate::payroll_cli::Submit {
                file,
                url,
                key,
                hold,
                currency,
                name,
            };
            railgate::payroll_cli::submit(opts).await?;
        }
        #[cfg(feature = "sandbox")]
        Command::MockRail { port, secret } => {
            let cfg = railgate_mock::MockRailConfig::new(
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                secret,
            );
            println!("mock rail on http://127.0.0.1:{port}");
            railgate_mock::serve_forever(cfg).await?;
        }
    }
    Ok(())
}

async fn keys_command(db: &store::Db, action: KeysAction) -> anyhow::Result<()> {
    use railgate::api::auth::SCOPES;
    match action {
        KeysAction::Create {
            client,
            scopes,
            label,
        } => {
            let scopes: Vec<&str> = scopes
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(s)) {
                anyhow::bail!("unknown scope '{bad}' (known: {})", SCOPES.join(", "));
            }
            let client_id = store::keys::ensure_client(db, &client).await?;
            let key = store::keys::generate_key();
            let id =
                store::keys::insert_key(db, client_id, &key, &scopes, label.as_deref()).await?;
            println!("key id: {id}\nclient: {client} ({client_id})\nscopes: {}\nAPI key: {key}\n(shown once; only its hash is stored)", scopes.join(" "));
        }
        KeysAction::List => {
            for k in store::keys::list(db).await? {
                println!(
                    "{}  {}…  client={}  scopes={}  {}",
                    k.id,
                    k.prefix,
                    k.client_name,
                    k.scopes.join(","),
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
        }
        KeysAction::Revoke { id } => {
            let n = store::keys::revoke(db, &id).await?;
            if n == 0 {
                anyhow::bail!("no active key with id or prefix '{id}'");
            }
            println!("revoked {n} key(s)");
        }
    }
    Ok(())
}
