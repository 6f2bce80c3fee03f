//! `tributary keys …`: producer and reader keys in `<data_dir>/keys.json`.
//!
//! `create` prints only the new secret on stdout, so a script can capture it
//! (`KEY=$(tributary keys create --tenant acme --role write)`); a running `serve` picks the key
//! up within `collector.keys_reload_interval`, without a restart.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use tributary_collector::keys::{self, NewKey, Role};

use crate::config::Config;
use crate::exit::OK;
use crate::output::{self, Table};

/// `tributary keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (alone on stdout; with --aws, the access key id and
    /// the secret access key on one line, separated by a space).
    Create(CreateArgs),
    /// List keys (ids, tenants, roles, limits; never secrets).
    List(ListArgs),
}

/// Arguments of `keys create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The tenant every event sent with this key belongs to (A-Z, a-z, 0-9, '_', '-').
    #[arg(long)]
    tenant: String,
    /// What the key may do: write (send events), read (query its tenant), admin (everything).
    #[arg(long, default_value = "write", value_parser = parse_role)]
    role: Role,
    /// Events per second allowed for this key (answered with 429 and Retry-After beyond).
    #[arg(long, value_name = "EVENTS_PER_S")]
    rate_limit: Option<f64>,
    /// Issue an AWS-style access key pair for the Kinesis API (SigV4) and print it instead.
    #[arg(long)]
    aws: bool,
    /// Require HMAC-signed requests (X-Tributary-Signature); prints the key and the signing
    /// secret on one line, separated by a space.
    #[arg(long)]
    signed: bool,
    /// Print the whole record as JSON (with the secrets) instead.
    #[arg(long)]
    json: bool,
}

/// Arguments of `keys list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON line instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
}

/// Runs a `keys` subcommand.
pub fn run(config: &Config, command: &KeysCommand) -> Result<ExitCode> {
    let path = config.keys_path();
    match command {
        KeysCommand::Create(args) => {
            if let Some(rate) = args.rate_limit
                && !(rate.is_finite() && rate > 0.0)
            {
                return Err(crate::exit::UsageError(format!(
                    "--rate-limit must be a positive number of events per second, not {rate}"
                ))
                .into());
            }
            let options = NewKey {
                rate_limit: args.rate_limit,
                aws: args.aws,
                require_signature: args.signed,
            };
            let created = keys::create_key(&path, &args.tenant, args.role, &options)
                .map_err(|e| match e {
                    keys::KeyError::InvalidTenant(_) => {
                        anyhow::Error::new(crate::exit::UsageError(e.to_string()))
                    }
                    other => anyhow::Error::new(other),
                })
                .with_context(|| format!("adding a key to {}", path.display()))?;
            let record = &created.record;
            if args.json {
                output::json_line(&json!({
                    "key": created.key,
                    "id": record.id,
                    "tenant": record.tenant,
                    "role": record.role,
                    "rate_limit": record.rate_limit,
                    "signing_secret": record.signing_secret,
                    "aws_access_key_id": record.aws_access_key_id,
                    "aws_secret_access_key": record.aws_secret_access_key,
                }))?;
            } else if let (Some(id), Some(secret)) =
                (&record.aws_access_key_id, &record.aws_secret_access_key)
            {
                output::print(&format!("{id} {secret}\n"))?;
            } else if let Some(secret) = &record.signing_secret {
                output::print(&format!("{} {secret}\n", created.key))?;
            } else {
                output::print(&format!("{}\n", created.key))?;
            }
            tracing::info!(id = %record.id, tenant = %record.tenant, file = %path.display(), "key created");
            Ok(ExitCode::from(OK))
        }
        KeysCommand::List(args) => {
            let records =
                keys::list_keys(&path).with_context(|| format!("reading {}", path.display()))?;
            if args.json {
                let rows: Vec<_> = records
                    .iter()
                    .map(|r| {
                        json!({
                            "id": r.id, "tenant": r.tenant, "role": r.role,
                            "rate_limit": r.rate_limit, "signed": r.require_signature,
                            "aws_access_key_id": r.aws_access_key_id, "created_at": r.created_at,
                        })
                    })
                    .collect();
                output::json_line(&rows)?;
                return Ok(ExitCode::from(OK));
            }
            let mut table = Table::new(&[
                "id",
                "tenant",
                "role",
                "rate_limit",
                "signed",
                "aws_access_key_id",
            ]);
            for r in &records {
                table.row(vec![
                    r.id.clone(),
                    r.tenant.clone(),
                    format!("{:?}", r.role).to_lowercase(),
                    r.rate_limit.map_or("-".into(), |l| l.to_string()),
                    r.require_signature.to_string(),
                    r.aws_access_key_id.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            output::print(&table.render())?;
            Ok(ExitCode::from(OK))
        }
    }
}
