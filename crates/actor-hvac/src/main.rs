//! `hvac`: the HVAC demo's binary. Everything lives in the `actor_hvac` library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // First: in an actor's process this runs the actor and exits; only the root goes on.
    let registry = actor_hvac::registry().run_if_child();
    let cli = match actor_hvac::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; a bad command line says why
            // on stderr and exits with EX_USAGE (clap's own exit code, 2, is the code of a
            // failed device).
            let _ = e.print();
            return if e.use_stderr() {
                std::process::ExitCode::from(actor_hvac::EXIT_USAGE as u8)
            } else {
                std::process::ExitCode::SUCCESS
            };
        }
    };
    // Returned, not `process::exit`: every destructor runs before the exit.
    actor_hvac::run(registry, &cli)
}
