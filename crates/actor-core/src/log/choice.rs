//! What a user chooses about the log: its level ([`LogLevel`]) and its format ([`LogFormat`]),
//! from a command line or the environment ([`LOG_ENV`], [`FORMAT_ENV`]).
//!
//! With the `clap` feature both are clap `ValueEnum`s (see [`LogLevel`]).

use serde::{Deserialize, Serialize};
use slog::Level;
use std::fmt;
use std::str::FromStr;

/// The environment variable that sets the log level (`error`, `warn`, `info`, `debug`, `trace`).
pub const LOG_ENV: &str = "MPACTOR_LOG";

/// The environment variable that sets the log format (`text`, the default, or `json`).
pub const FORMAT_ENV: &str = "MPACTOR_LOG_FORMAT";

/// The level used when neither a flag nor [`LOG_ENV`] says otherwise.
pub const DEFAULT_LEVEL: Level = Level::Info;

/// A log level as a command line names it: a record below the chosen level is dropped where it
/// is logged (slog's `Critical` records always pass).
///
/// ```
/// use actor_core::log::LogLevel;
/// let level: LogLevel = "WARNING".parse().unwrap();
/// assert_eq!(level, LogLevel::Warn);
/// assert_eq!(slog::Level::from(level), slog::Level::Warning);
/// assert_eq!(level.to_string(), "warn");
/// assert!("loud".parse::<LogLevel>().is_err());
/// ```
///
/// With the `clap` feature both are clap `ValueEnum`s, so a program's `--log-level` and
/// `--log-format` list their values in `--help` and read the environment variables:
///
/// ```
/// # #[cfg(feature = "clap")]
/// # fn main() {
/// use actor_core::log::{LogFormat, LogLevel, FORMAT_ENV, LOG_ENV};
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Cli {
///     /// How much the processes log.
///     #[arg(long, value_enum, ignore_case = true, env = LOG_ENV, default_value_t = LogLevel::Info)]
///     log_level: LogLevel,
///     /// The format of the log lines.
///     #[arg(long, value_enum, ignore_case = true, env = FORMAT_ENV, default_value_t = LogFormat::Text)]
///     log_format: LogFormat,
/// }
///
/// let cli = Cli::parse_from(["prog", "--log-level", "DEBUG", "--log-format", "json"]);
/// assert_eq!(cli.log_level, LogLevel::Debug);
/// assert_eq!(cli.log_format, LogFormat::Json);
/// // Handed to the system: `SystemConfig::new("MAIN").log_level(cli.log_level).log_format(cli.log_format)`.
/// # }
/// # #[cfg(not(feature = "clap"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Failures and what looks wrong.
    #[cfg_attr(feature = "clap", value(alias = "warning"))]
    Warn,
    /// Starts, stops, restarts, summaries.
    #[default]
    Info,
    /// Every step of the runtime.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Every level, from the quietest.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// The name a command line uses: `error`, `warn`, `info`, `debug`, `trace`.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The level that shows at least the records `level` shows (`Critical` maps to `Error`).
    pub fn from_slog(level: Level) -> LogLevel {
        match level {
            Level::Critical | Level::Error => LogLevel::Error,
            Level::Warning => LogLevel::Warn,
            Level::Info => LogLevel::Info,
            Level::Debug => LogLevel::Debug,
            Level::Trace => LogLevel::Trace,
        }
    }
}

impl From<LogLevel> for Level {
    fn from(level: LogLevel) -> Level {
        match level {
            LogLevel::Error => Level::Error,
            LogLevel::Warn => Level::Warning,
            LogLevel::Info => Level::Info,
            LogLevel::Debug => Level::Debug,
            LogLevel::Trace => Level::Trace,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A level name that is none of `error`, `warn`, `info`, `debug`, `trace` (nor `json`/`text`
/// for a format).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a log {what} ({expected})")]
pub struct UnknownName {
    text: String,
    what: &'static str,
    expected: &'static str,
}

impl FromStr for LogLevel {
    type Err = UnknownName;

    /// Case-insensitive; `warning` and `critical` are taken too.
    fn from_str(text: &str) -> Result<Self, UnknownName> {
        parse_level(text)
            .map(LogLevel::from_slog)
            .ok_or_else(|| UnknownName {
                text: text.to_string(),
                what: "level",
                expected: "error, warn, info, debug, trace",
            })
    }
}

/// The format of every line a process logs to stderr.
///
/// | format | a line |
/// |---|---|
/// | `Text` (default) | `WARN   0:01.204 STATUS     sensor slow ms=180` |
/// | `Json` | `{"time":"0:01.204","elapsed":1.204117,"level":"WARN","actor":"STATUS","pid":4242,"msg":"sensor slow","ms":180}` |
///
/// In JSON, `time` is the application clock as the text column shows it and `elapsed` the
/// same in seconds; the record's key-values follow the fixed keys, and one whose key is a fixed
/// key's name is written with a `kv_` prefix (`kv_pid`) rather than twice.
///
/// ```
/// use actor_core::log::LogFormat;
/// assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
/// assert_eq!(LogFormat::default(), LogFormat::Text);
/// assert!("xml".parse::<LogFormat>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LogFormat {
    /// One aligned line per record, coloured on a terminal (unless `NO_COLOR` is set).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The name a command line uses: `text` or `json`.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LogFormat {
    type Err = UnknownName;

    /// `text` or `json`, case-insensitive.
    fn from_str(text: &str) -> Result<Self, UnknownName> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownName {
                text: text.to_string(),
                what: "format",
                expected: "text, json",
            }),
        }
    }
}

/// Parses a level name (`error`, `warn`/`warning`, `info`, `debug`, `trace`, `critical`),
/// case-insensitively.
///
/// ```
/// use actor_core::log::parse_level;
/// assert_eq!(parse_level("DEBUG"), Some(slog::Level::Debug));
/// assert_eq!(parse_level("loud"), None);
/// ```
pub fn parse_level(text: &str) -> Option<Level> {
    match text.trim().to_ascii_lowercase().as_str() {
        "warn" | "warning" => Some(Level::Warning),
        other => Level::from_str(other).ok(),
    }
}

/// The level from the command line if given, else from [`LOG_ENV`], else [`DEFAULT_LEVEL`].
/// An unreadable value is reported on stderr and the default is used.
///
/// ```
/// assert_eq!(actor_core::log::level_from(Some("trace")), slog::Level::Trace);
/// ```
pub fn level_from(flag: Option<&str>) -> Level {
    from_flag_or_env(flag, "--log-level", LOG_ENV, parse_level, DEFAULT_LEVEL)
}

/// The format from the command line if given, else from [`FORMAT_ENV`], else
/// [`LogFormat::Text`]. An unreadable value is reported on stderr and text is used.
///
/// ```
/// use actor_core::log::{format_from, LogFormat};
/// assert_eq!(format_from(Some("json")), LogFormat::Json);
/// ```
pub fn format_from(flag: Option<&str>) -> LogFormat {
    from_flag_or_env(
        flag,
        "--log-format",
        FORMAT_ENV,
        |t| t.parse().ok(),
        LogFormat::default(),
    )
}

fn from_flag_or_env<T: fmt::Debug>(
    flag: Option<&str>,
    flag_name: &str,
    env_name: &str,
    parse: impl Fn(&str) -> Option<T>,
    default: T,
) -> T {
    let env = std::env::var(env_name).ok();
    let (text, source) = match (flag, env.as_deref()) {
        (Some(f), _) => (f, flag_name),
        (None, Some(e)) => (e, env_name),
        (None, None) => return default,
    };
    parse(text).unwrap_or_else(|| {
        super::stderr_line(&format!(
            "mpactor: {source}={text:?} is not understood; using {default:?}"
        ));
        default
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(parse_level("Info"), Some(Level::Info));
        assert_eq!(parse_level("warn"), Some(Level::Warning));
        assert_eq!(parse_level("trace"), Some(Level::Trace));
        assert_eq!(parse_level(""), None);
        assert_eq!("critical".parse::<LogLevel>(), Ok(LogLevel::Error));
    }

    #[test]
    fn every_level_names_itself_and_parses_back() {
        for level in LogLevel::ALL {
            assert_eq!(level.name().parse::<LogLevel>(), Ok(level));
            assert_eq!(LogLevel::from_slog(level.into()), level);
        }
        let err = "loud".parse::<LogLevel>().unwrap_err().to_string();
        assert!(err.contains("error, warn, info, debug, trace"), "{err}");
    }

    #[test]
    fn formats_parse_and_name_themselves() {
        for format in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(format.name().parse::<LogFormat>(), Ok(format));
        }
        assert_eq!(format_from(Some("Json")), LogFormat::Json);
        assert_eq!(format_from(Some("yaml")), LogFormat::Text);
    }
}
