//! The `hvac` command line. Every option is optional.

use crate::token::ControlToken;
use actor_core::log::{LogFormat, LogLevel, FORMAT_ENV, LOG_ENV};
use clap::Parser;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// The IoT HVAC monitoring device of the mptools talk, on mpactor: a root and four actors
/// (STATUS, OBSERVATION, SEND, LISTEN), each in its own process.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hvac",
    version,
    after_help = "Talk to it:  printf 'REQUEST STATUS' | nc -q1 127.0.0.1 9999\n\
                  Requests:    REQUEST <text> (echoed), REQUEST STATUS, REQUEST SET <C>, REQUEST END\n\
                  With a token: REQUEST TOKEN <token> END, REQUEST TOKEN <token> SET <C>\n\
                  Watch it:    tail -f send_file.txt\n\
                  Stop it:     Ctrl-C, REQUEST END, or --run-for\n\
                  Exit codes:  0 clean stop, 2 failed (start, fatal event), 3 crash loop, 64 bad command line"
)]
pub struct Cli {
    /// Address LISTEN serves on (a host name is resolved once, at start).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9999", value_parser = parse_addr)]
    pub listen: SocketAddr,

    /// File SEND appends STATUS, OBSERVATION and ERROR lines to (created if missing).
    #[arg(long, value_name = "PATH", default_value = "./send_file.txt")]
    pub send_file: PathBuf,

    /// Seconds between STATUS's health checks (fractions allowed); a status line is written
    /// when the health changes.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_interval)]
    pub status_interval: Duration,

    /// Seconds between OBSERVATION's readings of the room (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_interval)]
    pub observation_interval: Duration,

    /// Stop cleanly after this many seconds (fractions allowed); 0 runs until stopped.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_run_for)]
    pub run_for: Duration,

    /// Seconds a client has to send its request (fractions allowed); a silent client then
    /// gets `ERROR no request within ...` and is closed.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_interval)]
    pub client_timeout: Duration,

    /// The most client connections open at once; a client beyond it gets `ERROR busy` and
    /// is closed at once.
    #[arg(long, value_name = "N", default_value_t = crate::listen::DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_max_connections)]
    pub max_connections: usize,

    /// Seconds between LISTEN's INFO lines counting the connections (only while there is
    /// traffic); each connection also gets one DEBUG line.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_interval)]
    pub stats_interval: Duration,

    /// When set, REQUEST END and REQUEST SET must carry it (the form is below).
    /// Prefer the environment variable: a command line is visible in `ps`.
    #[arg(long, value_name = "TOKEN", env = crate::token::TOKEN_ENV, hide_env_values = true,
          value_parser = parse_token)]
    pub control_token: Option<ControlToken>,

    /// How much every process logs (any case). Default: info (quiet under traffic: one count
    /// line per stats interval); debug adds a line per connection and reads like the talk's
    /// sample at the start and the stop.
    #[arg(long, value_name = "LEVEL", value_enum, ignore_case = true, env = LOG_ENV)]
    pub log_level: Option<LogLevel>,

    /// The format of every process's log lines on stderr: aligned text, or one JSON object per
    /// line for a log collector.
    #[arg(long, value_name = "FORMAT", value_enum, ignore_case = true, env = FORMAT_ENV,
          default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The level when neither `--log-level` nor `MPACTOR_LOG` says otherwise.
/// INFO: a device's control port under a flood of clients must not flood its log (each
/// connection is one DEBUG line).
pub const DEFAULT_LEVEL: slog::Level = slog::Level::Info;

impl Cli {
    /// The log level: `--log-level`, else `MPACTOR_LOG`, else [`DEFAULT_LEVEL`].
    pub fn level(&self) -> slog::Level {
        self.log_level.map_or(DEFAULT_LEVEL, Into::into)
    }
}

/// Resolves `HOST:PORT` to its first address.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("{text:?} is not a HOST:PORT address: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn seconds(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{text:?} is not a number of seconds"));
    }
    Ok(secs)
}

/// An interval: more than zero, at most a day.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let secs = seconds(text)?;
    if !(0.001..=86_400.0).contains(&secs) {
        return Err(format!("{secs} s is out of range: 0.001..86400"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A run-for time: zero (until stopped) or more.
pub fn parse_run_for(text: &str) -> Result<Duration, String> {
    let secs = seconds(text)?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

/// A cap on connections: 1 to 1,000,000.
pub fn parse_max_connections(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of connections"))?;
    if !(1..=1_000_000).contains(&n) {
        return Err(format!("{n} is out of range: 1..1000000"));
    }
    Ok(n)
}

/// A control token: one word, printable, at most 256 bytes.
pub fn parse_token(text: &str) -> Result<ControlToken, String> {
    ControlToken::new(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_defaults_show_activity_within_seconds() {
        let cli = Cli::try_parse_from(["hvac"]).expect("no options");
        assert_eq!(cli.listen, "127.0.0.1:9999".parse().expect("address"));
        assert_eq!(cli.send_file, PathBuf::from("./send_file.txt"));
        assert!(cli.status_interval <= Duration::from_secs(2));
        assert!(cli.observation_interval <= Duration::from_secs(2));
        assert_eq!(cli.run_for, Duration::ZERO);
    }

    #[test]
    fn every_option_parses() {
        let cli = Cli::try_parse_from([
            "hvac",
            "--listen",
            "localhost:7000",
            "--send-file",
            "/tmp/x.txt",
            "--status-interval",
            "0.25",
            "--observation-interval",
            ".5",
            "--run-for",
            "3",
            "--log-level",
            "INFO",
            "--log-format",
            "json",
        ])
        .expect("valid options");
        assert_eq!(cli.listen.port(), 7000);
        assert!(cli.listen.ip().is_loopback());
        assert_eq!(cli.status_interval, Duration::from_millis(250));
        assert_eq!(cli.observation_interval, Duration::from_millis(500));
        assert_eq!(cli.run_for, Duration::from_secs(3));
        assert_eq!(cli.level(), slog::Level::Info);
        assert_eq!(cli.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for args in [
            ["hvac", "--status-interval", "0"],
            ["hvac", "--status-interval", "-1"],
            ["hvac", "--observation-interval", "soon"],
            ["hvac", "--run-for", "inf"],
            ["hvac", "--listen", "nowhere"],
            ["hvac", "--log-level", "loud"],
            ["hvac", "--log-format", "xml"],
        ] {
            let err = Cli::try_parse_from(args).expect_err("refused");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn help_is_consistent() {
        Cli::command().debug_assert();
    }
}
