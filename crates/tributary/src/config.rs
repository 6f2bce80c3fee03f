//! The typed configuration tree and where its values come from.
//!
//! Layers, each overriding the one before:
//!
//! ```text
//! built-in defaults ◀─ TOML file ◀─ TRIBUTARY_* environment variables ◀─ command-line flags
//!                    (--config FILE,   (`__` separates levels:
//!                     else ./tributary.toml  TRIBUTARY_STREAM__SHARDS=8)
//!                     if it exists)
//! ```
//!
//! Every error names the field (`stream.shards`) and the layer that set it (the file, the exact
//! environment variable, or the flag), because "invalid type: expected u32" alone sends an
//! operator searching through three places. `tributary.example.toml` at the repository root lists
//! every field with its default; a test below keeps it equal to [`Config::default`].

use std::fmt;
use std::path::PathBuf;
use tributary_pipeline::PipelineConfig;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Serialize};
use tributary_collector::CollectorConfig;
use tributary_lake::{LakeConfig, LakeError};
use tributary_query::QueryConfig;
use tributary_stream::{StreamConfig, StreamError};

/// Prefix of the environment variables that override configuration fields.
pub const ENV_PREFIX: &str = "TRIBUTARY_";

/// The file read when `--config` is not given, if it exists in the working directory.
pub const DEFAULT_FILE: &str = "tributary.toml";

/// Environment variables with [`ENV_PREFIX`] that are not configuration fields: they are read by
/// the command line itself (`TRIBUTARY_CONFIG` is `--config`).
const ENV_NOT_FIELDS: &[&str] = &["config"];

const LAYER_DEFAULTS: &str = "built-in defaults";
const LAYER_ENV: &str = "environment variable";
const LAYER_FLAGS: &str = "command-line flag";

/// Everything `tributary` can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where Tributary keeps its data; the stream lives in `<data_dir>/stream`.
    /// Default `./data`. Flag: `--data`.
    pub data_dir: PathBuf,
    /// Logging.
    pub log: LogConfig,
    /// The HTTP ingest edge (`tributary_collector::CollectorConfig`).
    pub collector: CollectorConfig,
    /// The embedded stream (`tributary_stream::StreamConfig`).
    pub stream: StreamConfig,
    /// The lake writer, compaction and retention (`tributary_lake::LakeConfig`).
    pub lake: LakeConfig,
    /// The SQL engine (`tributary_query::QueryConfig`).
    pub query: QueryConfig,
    /// Validation, enrichment, privacy and dedup before the curated lake
    /// (`tributary_pipeline::PipelineConfig`).
    pub pipeline: PipelineConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            log: LogConfig::default(),
            collector: CollectorConfig::default(),
            stream: StreamConfig::default(),
            lake: LakeConfig::default(),
            query: QueryConfig::default(),
            pipeline: PipelineConfig::default(),
        }
    }
}

impl Config {
    /// The directory of the embedded stream.
    pub fn stream_dir(&self) -> PathBuf {
        self.data_dir.join("stream")
    }

    /// The catalog database (tables, live files, the lake's checkpoint).
    pub fn catalog_path(&self) -> PathBuf {
        self.data_dir.join("catalog.db")
    }

    /// The root of the lake (raw archive and curated Parquet).
    pub fn lake_dir(&self) -> PathBuf {
        self.data_dir.join("lake")
    }

    /// The privacy key generated on first start when `pipeline.privacy.key` is unset.
    pub fn privacy_key_path(&self) -> PathBuf {
        self.data_dir.join("privacy.key")
    }

    /// The dedup store (`pipeline.dedup.path`, default `<data_dir>/dedup.log`).
    pub fn dedup_path(&self) -> PathBuf {
        self.pipeline
            .dedup
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("dedup.log"))
    }

    /// The producer key file (`tributary keys create` writes it, `serve` reloads it).
    pub fn keys_path(&self) -> PathBuf {
        self.data_dir.join("keys.json")
    }
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or directives such
    /// as `info,tributary_stream=debug`. `RUST_LOG`, when set, takes precedence. Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

/// Where configuration values come from, gathered by the command line.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// `--config FILE`: must exist.
    pub file: Option<PathBuf>,
    /// Read when `file` is `None`, only if it exists (normally [`DEFAULT_FILE`]).
    pub default_file: Option<PathBuf>,
    /// The process environment (only variables starting with [`ENV_PREFIX`] are used).
    pub env: Vec<(String, String)>,
    /// `--data DIR`.
    pub data_dir: Option<PathBuf>,
}

impl ConfigSources {
    /// The sources of this process: its environment and `./tributary.toml`, plus the flags.
    pub fn from_process(file: Option<PathBuf>, data_dir: Option<PathBuf>) -> Self {
        ConfigSources {
            file,
            default_file: Some(PathBuf::from(DEFAULT_FILE)),
            env: std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
            data_dir,
        }
    }
}

/// The effective configuration and the file it was read from, if any.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged, validated configuration.
    pub config: Config,
    /// The TOML file that contributed, if one did.
    pub file: Option<PathBuf>,
}

/// A configuration value is missing, malformed or out of range. The message names the field and
/// where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Merges the layers of `sources` and validates the result.
pub fn load(sources: &ConfigSources) -> Result<Loaded, ConfigError> {
    let file = match (&sources.file, &sources.default_file) {
        (Some(file), _) => {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} (--config) does not exist or is not a file",
                    file.display()
                )));
            }
            Some(file.clone())
        }
        (None, Some(default)) if default.is_file() => Some(default.clone()),
        (None, _) => None,
    };

    let mut figment = Figment::from(Layer {
        name: LAYER_DEFAULTS,
        inner: Serialized::defaults(Config::default()),
    });
    if let Some(file) = &file {
        // `file_exact`: `Toml::file` would also search parent directories, which makes the
        // effective configuration depend on where the command happens to run.
        figment = figment.merge(Toml::file_exact(file));
    }
    let env = EnvVars::new(&sources.env);
    figment = figment.merge(env.clone());
    if let Some(dir) = &sources.data_dir {
        figment = figment.merge(Layer {
            name: LAYER_FLAGS,
            inner: Serialized::default("data_dir", dir),
        });
    }

    let origins = Origins {
        file: file.as_deref(),
        env: &env,
    };
    let config: Config = figment
        .extract()
        .map_err(|e| describe_figment_error(e, &origins))?;
    validate(&config, &figment, &origins)?;
    Ok(Loaded { config, file })
}

/// Range checks that serde cannot express, named by field and layer.
fn validate(config: &Config, figment: &Figment, origins: &Origins) -> Result<(), ConfigError> {
    let stream = config.stream.validate().err().map(|error| match error {
        StreamError::Config(message) => message,
        other => other.to_string(),
    });
    let lake = config.lake.validate().err().map(|error| match error {
        LakeError::Config(message) => message,
        other => other.to_string(),
    });
    if let Some(message) = stream.or(lake) {
        // Sections name the field first ("stream.shards is 0, …"); look up who set it.
        let key = message
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .next()
            .unwrap_or_default();
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        let origin = figment
            .find_metadata(key)
            .map(|md| describe_layer(md, &path, origins))
            .unwrap_or_else(|| "configuration".into());
        return Err(ConfigError(format!("{message} (set by {origin})")));
    }
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        let path = ["log".to_owned(), "level".to_owned()];
        let origin = figment
            .find_metadata("log.level")
            .map(|md| describe_layer(md, &path, origins))
            .unwrap_or_else(|| "configuration".into());
        return Err(ConfigError(format!(
            "log.level {:?} (set by {origin}) is not a tracing filter: {error}",
            config.log.level
        )));
    }
    Ok(())
}

/// Turns figment's errors into one message naming each field and its layer.
fn describe_figment_error(error: figment::Error, origins: &Origins) -> ConfigError {
    let messages: Vec<String> = error
        .into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            // serde reports an unknown field at its parent's path; name the field itself.
            if let figment::error::Kind::UnknownField(field, _) = &e.kind
                && path.last() != Some(field)
            {
                path.push(field.clone());
            }
            let origin = match &e.metadata {
                Some(md) => describe_layer(md, &path, origins),
                None => "configuration".into(),
            };
            if path.is_empty() {
                format!("{origin}: {}", e.kind)
            } else {
                format!("{} (set by {origin}): {}", path.join("."), e.kind)
            }
        })
        .collect();
    ConfigError(messages.join("; "))
}

/// Names the layer that set `path`: the file, the exact environment variable, or the flag.
fn describe_layer(metadata: &Metadata, path: &[String], origins: &Origins) -> String {
    if metadata.name == LAYER_ENV {
        format!("environment variable {}", origins.env.names_under(path))
    } else if metadata.name == LAYER_FLAGS {
        match path.first().map(String::as_str) {
            Some("data_dir") => "command-line flag --data".into(),
            _ => "a command-line flag".into(),
        }
    } else if metadata.name == LAYER_DEFAULTS {
        LAYER_DEFAULTS.into()
    } else {
        match (&metadata.source, origins.file) {
            (Some(Source::File(path)), _) => format!("config file {}", path.display()),
            (_, Some(path)) => format!("config file {}", path.display()),
            _ => metadata.name.to_string(),
        }
    }
}

/// What the layers were read from, to name them in errors.
struct Origins<'a> {
    file: Option<&'a std::path::Path>,
    env: &'a EnvVars,
}

/// The environment variable that sets the field at `path`: `TRIBUTARY_STREAM__SHARDS`.
pub fn env_var_name(path: &[impl AsRef<str>]) -> String {
    let keys: Vec<String> = path
        .iter()
        .map(|key| key.as_ref().to_ascii_uppercase())
        .collect();
    format!("{ENV_PREFIX}{}", keys.join("__"))
}

/// A provider under a name of ours, so that errors can say which layer set a value.
struct Layer<P> {
    name: &'static str,
    inner: P,
}

impl<P: Provider> Provider for Layer<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

/// `TRIBUTARY_*` variables as configuration, `__` separating levels.
///
/// figment's own `Env` provider reads the process environment directly; this one takes the
/// variables as a value so that tests do not have to mutate the (process-global) environment,
/// and it names the exact variable in errors.
#[derive(Clone)]
struct EnvVars {
    /// (dotted key, variable name, value)
    vars: Vec<(String, String, String)>,
}

impl EnvVars {
    fn new(env: &[(String, String)]) -> Self {
        let vars = env
            .iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix(ENV_PREFIX)?;
                let key = rest.to_ascii_lowercase().replace("__", ".");
                if key.is_empty()
                    || key.split('.').any(str::is_empty)
                    || ENV_NOT_FIELDS.contains(&key.as_str())
                {
                    return None;
                }
                Some((key, name.clone(), value.clone()))
            })
            .collect();
        EnvVars { vars }
    }

    /// The variables that set `path` or something under it, as they were spelled; for an
    /// unknown field that is the variable with the typo, not a name rebuilt from the path.
    fn names_under(&self, path: &[String]) -> String {
        let dotted = path.join(".");
        let names: Vec<&str> = self
            .vars
            .iter()
            .filter(|(key, _, _)| {
                key == &dotted || key.starts_with(&format!("{dotted}.")) || dotted.is_empty()
            })
            .map(|(_, name, _)| name.as_str())
            .collect();
        if names.is_empty() {
            env_var_name(path)
        } else {
            names.join(", ")
        }
    }
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named(LAYER_ENV).interpolater(|_: &Profile, keys: &[&str]| env_var_name(keys))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, _, raw) in &self.vars {
            // figment parses "8" as a number and "36h" as a string, as a person would expect.
            let value: Value = match raw.parse() {
                Ok(value) => value,
                Err(never) => match never {},
            };
            let nested = figment::util::nest(key, value);
            if let Some(nested) = nested.into_dict() {
                dict = merge_dicts(dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Deep-merges `right` into `left` (two variables may set siblings under one section).
fn merge_dicts(mut left: Dict, right: Dict) -> Dict {
    for (key, value) in right {
        let merged = match (left.remove(&key), value) {
            (Some(Value::Dict(_, l)), Value::Dict(tag, r)) => Value::Dict(tag, merge_dicts(l, r)),
            (_, value) => value,
        };
        left.insert(key, merged);
    }
    left
}

/// The effective configuration as TOML, with a header saying where it came from.
///
/// Secrets are not printed (the output ends up in bug reports and terminals' scrollback): a
/// set `pipeline.privacy.key` is left out and named in a comment. Optional keys without a value
/// cannot be written in TOML at all, so a closing comment names them, so that every key can
/// be found in the output.
pub fn to_toml(loaded: &Loaded) -> anyhow::Result<String> {
    let mut shown = loaded.config.clone();
    let hidden_key = shown.pipeline.privacy.key.take().is_some();
    let body = toml::to_string(&shown)?;
    let file = match &loaded.file {
        Some(path) => path.display().to_string(),
        None => "none".into(),
    };
    let mut text = format!(
        "# Effective configuration: built-in defaults < config file ({file}) < {ENV_PREFIX}* \
         environment variables < flags.\n{body}"
    );
    let present = leaf_keys(&toml::Value::try_from(&shown)?);
    let unset: Vec<String> = leaf_keys(&toml::Value::try_from(with_every_option_set(
        shown.clone(),
    ))?)
    .into_iter()
    .filter(|key| !present.contains(key))
    .map(|key| key.join("."))
    .collect();
    if hidden_key || !unset.is_empty() {
        text.push_str("\n# Not shown above (docs/configuration.md says what each means):\n");
    }
    if hidden_key {
        text.push_str("#   pipeline.privacy.key is set; a secret, so not printed\n");
    }
    for key in unset {
        text.push_str(&format!("#   {key} is not set\n"));
    }
    Ok(text)
}

/// What a set secret is shown as in `config show --json`.
pub const REDACTED: &str = "<redacted>";

/// `config` fit to print: secrets (`pipeline.privacy.key`) replaced by [`REDACTED`].
pub fn redacted(config: &Config) -> Config {
    let mut shown = config.clone();
    if let Some(key) = shown.pipeline.privacy.key.as_mut() {
        *key = REDACTED.to_string();
    }
    shown
}

/// `config` with every optional key given a value: what the full set of keys looks like.
fn with_every_option_set(mut config: Config) -> Config {
    config.stream.shards.get_or_insert(1);
    config.stream.retention.max_bytes_per_shard.get_or_insert(1);
    config.lake.retention.events_days.get_or_insert(1);
    config.lake.retention.raw_days.get_or_insert(1);
    config.pipeline.dedup.path.get_or_insert_default();
    config
        .pipeline
        .enrichment
        .geoip_database
        .get_or_insert_default();
    config.pipeline.privacy.key.get_or_insert_default();
    config
}

/// Every leaf key of a TOML value, as its path of names.
fn leaf_keys(value: &toml::Value) -> Vec<Vec<String>> {
    fn walk(prefix: &[String], value: &toml::Value, out: &mut Vec<Vec<String>>) {
        match value {
            toml::Value::Table(table) => {
                for (key, child) in table {
                    let mut path = prefix.to_vec();
                    path.push(key.clone());
                    walk(&path, child, out);
                }
            }
            _ => out.push(prefix.to_vec()),
        }
    }
    let mut keys = Vec::new();
    walk(&[], value, &mut keys);
    keys
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use tributary_stream::Durability;

    use super::*;

    const EXAMPLE: &str = include_str!("../../../tributary.example.toml");
    const CONFIGURATION_DOC: &str = include_str!("../../../docs/configuration.md");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write_file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("tributary.toml");
        #[allow(clippy::disallowed_methods)] // a test fixture, not durable data
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Every leaf key of the defaults, as dotted paths. Optional fields that default to unset
    /// are filled in first so that they are checked too.
    fn leaf_keys() -> Vec<Vec<String>> {
        let config = with_every_option_set(Config::default());
        super::leaf_keys(&toml::Value::try_from(&config).unwrap())
    }

    #[test]
    fn example_file_equals_the_defaults() {
        let parsed: Config = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn example_file_mentions_every_field() {
        for path in leaf_keys() {
            let field = path.last().unwrap();
            let mentioned = EXAMPLE.lines().any(|line| {
                let line = line.trim_start().trim_start_matches('#').trim_start();
                line.strip_prefix(field.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            });
            assert!(mentioned, "tributary.example.toml lacks {}", path.join("."));
        }
    }

    #[test]
    fn configuration_doc_names_every_field_and_variable() {
        for path in leaf_keys() {
            let dotted = path.join(".");
            assert!(
                CONFIGURATION_DOC.contains(&format!("`{dotted}`")),
                "docs/configuration.md lacks `{dotted}`"
            );
            let var = env_var_name(&path);
            assert!(
                CONFIGURATION_DOC.contains(&var),
                "docs/configuration.md lacks {var}"
            );
        }
    }

    #[test]
    fn defaults_without_any_source() {
        let loaded = load(&ConfigSources::default()).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert_eq!(loaded.file, None);
        assert_eq!(loaded.config.stream_dir(), PathBuf::from("./data/stream"));
    }

    #[test]
    fn environment_overrides_nested_fields() {
        let sources = ConfigSources {
            env: env(&[
                ("TRIBUTARY_STREAM__SHARDS", "8"),
                ("TRIBUTARY_STREAM__RETENTION__MAX_AGE", "36h"),
                ("TRIBUTARY_STREAM__DURABILITY", "interval:100"),
                ("TRIBUTARY_DATA_DIR", "/x"),
                ("TRIBUTARY_CONFIG", "ignored.toml"),
                ("UNRELATED", "1"),
            ]),
            ..ConfigSources::default()
        };
        let config = load(&sources).unwrap().config;
        assert_eq!(config.stream.shards, Some(8));
        assert_eq!(
            config.stream.retention.max_age,
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(
            config.stream.durability,
            Durability::Interval(Duration::from_millis(100))
        );
        assert_eq!(config.data_dir, PathBuf::from("/x"));
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "data_dir = \"/from-file\"\n[log]\nlevel = \"debug\"\n[stream]\nshards = 2\nmax_key_bytes = 100\n",
        );
        let sources = ConfigSources {
            file: Some(file.clone()),
            env: env(&[
                ("TRIBUTARY_STREAM__SHARDS", "3"),
                ("TRIBUTARY_DATA_DIR", "/from-env"),
            ]),
            data_dir: Some(PathBuf::from("/from-flag")),
            ..ConfigSources::default()
        };
        let loaded = load(&sources).unwrap();
        assert_eq!(loaded.file, Some(file));
        let config = loaded.config;
        assert_eq!(config.log.level, "debug", "file over defaults");
        assert_eq!(config.stream.max_key_bytes, 100, "file over defaults");
        assert_eq!(config.stream.shards, Some(3), "env over file");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from-flag"),
            "flag over env"
        );
    }

    #[test]
    fn default_file_is_optional_but_explicit_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let sources = ConfigSources {
            default_file: Some(missing.clone()),
            ..ConfigSources::default()
        };
        assert_eq!(load(&sources).unwrap().file, None);

        let sources = ConfigSources {
            file: Some(missing),
            ..ConfigSources::default()
        };
        let err = load(&sources).unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }

    #[test]
    fn bad_env_value_names_the_variable_and_field() {
        let sources = ConfigSources {
            env: env(&[("TRIBUTARY_STREAM__SHARDS", "lots")]),
            ..ConfigSources::default()
        };
        let err = load(&sources).unwrap_err().to_string();
        assert!(err.contains("stream.shards"), "{err}");
        assert!(err.contains("TRIBUTARY_STREAM__SHARDS"), "{err}");
    }

    #[test]
    fn unknown_env_field_names_the_variable_as_spelled() {
        let sources = ConfigSources {
            env: env(&[("TRIBUTARY_STREM__SHARDS", "3")]),
            ..ConfigSources::default()
        };
        let err = load(&sources).unwrap_err().to_string();
        assert!(err.contains("TRIBUTARY_STREM__SHARDS"), "{err}");
    }

    #[test]
    fn unknown_key_in_file_names_the_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "[stream]\nshard = 8\n");
        let sources = ConfigSources {
            file: Some(file),
            ..ConfigSources::default()
        };
        let err = load(&sources).unwrap_err().to_string();
        assert!(err.contains("stream.shard "), "{err}");
        assert!(err.contains("tributary.toml"), "{err}");
    }

    #[test]
    fn out_of_range_value_names_field_and_layer() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "[stream]\nshards = 0\n");
        let sources = ConfigSources {
            file: Some(file),
            ..ConfigSources::default()
        };
        let err = load(&sources).unwrap_err().to_string();
        assert!(err.contains("stream.shards is 0"), "{err}");
        assert!(err.contains("config file"), "{err}");

        let sources = ConfigSources {
            env: env(&[("TRIBUTARY_STREAM__SEGMENT_BYTES", "10")]),
            ..ConfigSources::default()
        };
        let err = load(&sources).unwrap_err().to_string();
        assert!(err.contains("TRIBUTARY_STREAM__SEGMENT_BYTES"), "{err}");
    }

    #[test]
    fn bad_log_level_is_refused_by_name() {
        let sources = ConfigSources {
            env: env(&[("TRIBUTARY_LOG__LEVEL", "tributary=loud")]),
            ..ConfigSources::default()
        };
        let err = load(&sources).unwrap_err().to_string();
        assert!(err.contains("log.level"), "{err}");
        assert!(err.contains("TRIBUTARY_LOG__LEVEL"), "{err}");
    }

    #[test]
    fn effective_toml_round_trips() {
        let loaded = load(&ConfigSources::default()).unwrap();
        let text = to_toml(&loaded).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, loaded.config);
        // Unset optional keys cannot be written as TOML; they are named instead.
        for key in [
            "stream.shards",
            "lake.retention.raw_days",
            "pipeline.privacy.key",
        ] {
            assert!(
                text.contains(&format!("#   {key} is not set")),
                "{key}: {text}"
            );
        }
    }

    #[test]
    fn the_privacy_key_is_never_printed() {
        let secret = "a-secret-hmac-key-of-some-length";
        let sources = ConfigSources {
            env: env(&[
                ("TRIBUTARY_PIPELINE__PRIVACY__KEY", secret),
                ("TRIBUTARY_STREAM__SHARDS", "4"),
            ]),
            ..ConfigSources::default()
        };
        let loaded = load(&sources).unwrap();
        assert_eq!(loaded.config.pipeline.privacy.key.as_deref(), Some(secret));
        let text = to_toml(&loaded).unwrap();
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("pipeline.privacy.key is set; a secret, so not printed"));
        assert!(!text.contains("stream.shards is not set"), "{text}");
        assert!(text.contains("shards = 4"), "{text}");
        let json = serde_json::to_string(&redacted(&loaded.config)).unwrap();
        assert!(!json.contains(secret), "{json}");
        assert!(json.contains(&format!("\"key\":\"{REDACTED}\"")), "{json}");
    }
}
