//! Exit codes: what a script can rely on.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | failure: an I/O error, a failed append, damage found by `stream verify` |
//! | 2 | usage or configuration error: a bad flag or config value, a data directory that does not exist, holds another shard count, or is in use by another process |
//!
//! clap already exits with 2 on a malformed command line; everything else goes through
//! [`code_for`], which looks at the whole error chain so that context added on the way up does
//! not hide what went wrong.

use std::fmt;
use std::process::ExitCode;

use tributary_pipeline::PipelineError;
use tributary_stream::{StreamError, StreamErrorKind};

use crate::config::ConfigError;

/// Exit code for success.
pub const OK: u8 = 0;
/// Exit code for a failure that is not the caller's fault (I/O, damage).
pub const FAILURE: u8 = 1;
/// Exit code for a usage or configuration error: fix the command or the config and retry.
pub const USAGE: u8 = 2;

/// An error the user can fix by changing the command line (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code an error deserves: 2 when anything in its chain is a usage or configuration
/// error, 1 otherwise.
pub fn code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<UsageError>() || cause.is::<ConfigError>() {
            return USAGE;
        }
        if let Some(PipelineError::DedupInUse { .. }) = cause.downcast_ref::<PipelineError>() {
            return USAGE;
        }
        if let Some(stream) = cause.downcast_ref::<StreamError>() {
            // Config: the directory does not fit the configuration (shard count, lock held).
            // InvalidInput: from the CLI, an unknown shard or consumer is a typo in a flag.
            return match stream.kind() {
                StreamErrorKind::Config | StreamErrorKind::InvalidInput => USAGE,
                StreamErrorKind::Unavailable | StreamErrorKind::Corruption => FAILURE,
            };
        }
    }
    FAILURE
}

/// Prints `error` with its chain of causes on stderr and returns the matching exit code.
pub fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(code_for(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn usage_errors_survive_added_context() {
        let error = anyhow::Error::new(UsageError("no such shard".into())).context("reading");
        assert_eq!(code_for(&error), USAGE);
    }

    #[test]
    fn stream_config_errors_are_usage_errors() {
        let result: Result<(), StreamError> = Err(StreamError::Config("shards differ".into()));
        let error = result.context("opening the stream").unwrap_err();
        assert_eq!(code_for(&error), USAGE);
    }

    #[test]
    fn io_and_corruption_are_failures() {
        let closed = anyhow::Error::new(StreamError::Closed);
        assert_eq!(code_for(&closed), FAILURE);
        assert_eq!(code_for(&anyhow::anyhow!("disk on fire")), FAILURE);
    }
}
