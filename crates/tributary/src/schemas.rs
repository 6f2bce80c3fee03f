//! `tributary schemas …`: the pipeline's schema registry (JSON Schemas per event type, stored
//! in the catalog). A running `serve` picks a new version up within a few seconds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tributary_catalog::{Catalog, EmbeddedCatalog};
use tributary_pipeline::PipelineError;
use tributary_pipeline::registry::add_schema;

use crate::config::Config;
use crate::exit::{OK, UsageError};
use crate::output::{self, Table};
use crate::runtime;

/// `tributary schemas` subcommands.
#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Add a schema version from a JSON file: either `{"event_type": "…", "schema": {…}}` or
    /// a bare JSON Schema with --event-type. Refused (exit 2, naming what breaks) when it is not
    /// backward compatible with the version in force, unless --force.
    Add(AddArgs),
    /// List event types with their versions.
    List(ListArgs),
    /// Print one schema version as JSON (default: the one in force).
    Show(ShowArgs),
}

/// Arguments of `schemas add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The JSON file.
    file: PathBuf,
    /// The event type, e.g. "track:Order Completed" (overrides the file's `event_type`).
    #[arg(long)]
    event_type: Option<String>,
    /// Add it even if it is not backward compatible.
    #[arg(long)]
    force: bool,
    /// Print the recorded version as one JSON line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `schemas list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON line instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `schemas show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The event type.
    event_type: String,
    /// The version (default: the newest).
    #[arg(long)]
    version: Option<u32>,
}

/// Runs a `schemas` subcommand.
pub fn run(config: &Config, command: &SchemasCommand) -> Result<ExitCode> {
    let runtime = runtime::build(1)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let catalog = EmbeddedCatalog::open(config.catalog_path())
        .with_context(|| format!("opening the catalog {}", config.catalog_path().display()))?;
    runtime.block_on(async {
        match command {
            SchemasCommand::Add(args) => add(&catalog, args).await,
            SchemasCommand::List(args) => list(&catalog, args).await,
            SchemasCommand::Show(args) => show(&catalog, args).await,
        }
    })
}

async fn add(catalog: &EmbeddedCatalog, args: &AddArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let document: Value = serde_json::from_str(&text)
        .map_err(|error| UsageError(format!("{} is not JSON: {error}", args.file.display())))?;
    let (event_type, schema) = split_document(document, args.event_type.as_deref())
        .map_err(|message| UsageError(format!("{}: {message}", args.file.display())))?;
    let recorded = match add_schema(catalog, &event_type, schema, args.force).await {
        Ok(recorded) => recorded,
        // The user's schema is at fault: exit 2, with the message naming what breaks.
        Err(error @ (PipelineError::Incompatible { .. } | PipelineError::InvalidSchema { .. })) => {
            return Err(UsageError(error.to_string()).into());
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        output::json_line(&recorded)?;
    } else {
        output::print(&format!(
            "{} version {}{}\n",
            recorded.event_type,
            recorded.version,
            if recorded.forced { " (forced)" } else { "" }
        ))?;
    }
    Ok(ExitCode::from(OK))
}

/// The event type and the schema from a file's document.
fn split_document(document: Value, event_type: Option<&str>) -> Result<(String, Value), String> {
    let wrapped = document
        .as_object()
        .is_some_and(|map| map.contains_key("schema") && map.contains_key("event_type"));
    let (named, schema) = if wrapped {
        let mut map = match document {
            Value::Object(map) => map,
            _ => return Err("expected an object".into()),
        };
        let named = map
            .remove("event_type")
            .and_then(|v| v.as_str().map(str::to_string));
        (named, map.remove("schema").unwrap_or(Value::Null))
    } else {
        (None, document)
    };
    let event_type = event_type.map(str::to_string).or(named).ok_or(
        "no event type: give --event-type or wrap the schema as {\"event_type\": …, \"schema\": …}",
    )?;
    Ok((event_type, schema))
}

async fn list(catalog: &EmbeddedCatalog, args: &ListArgs) -> Result<ExitCode> {
    let schemas = catalog.event_schemas().await?;
    if args.json {
        output::json_line(&json!({ "schemas": schemas }))?;
        return Ok(ExitCode::from(OK));
    }
    let mut table = Table::new(&["event type", "version", "forced", "added"]);
    for schema in &schemas {
        table.row(vec![
            schema.event_type.clone(),
            schema.version.to_string(),
            if schema.forced { "yes" } else { "" }.into(),
            output::timestamp(schema.created_at),
        ]);
    }
    output::print(&table.render())?;
    Ok(ExitCode::from(OK))
}

async fn show(catalog: &EmbeddedCatalog, args: &ShowArgs) -> Result<ExitCode> {
    let schemas = catalog.event_schemas().await?;
    let found = schemas
        .iter()
        .filter(|s| s.event_type == args.event_type)
        .filter(|s| args.version.is_none_or(|v| v == s.version))
        .max_by_key(|s| s.version)
        .ok_or_else(|| {
            UsageError(format!(
                "no schema for {:?}{}",
                args.event_type,
                args.version
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default()
            ))
        })?;
    output::print(&format!(
        "{}\n",
        serde_json::to_string_pretty(&found.schema)?
    ))?;
    Ok(ExitCode::from(OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_wrapped_or_bare() {
        let wrapped = json!({"event_type": "track:A", "schema": {"type": "object"}});
        assert_eq!(
            split_document(wrapped, None).unwrap(),
            ("track:A".into(), json!({"type": "object"}))
        );
        let bare = json!({"type": "object", "required": ["x"]});
        assert_eq!(
            split_document(bare.clone(), Some("track:B")).unwrap().1,
            bare
        );
        assert!(
            split_document(bare, None)
                .unwrap_err()
                .contains("--event-type")
        );
    }
}
