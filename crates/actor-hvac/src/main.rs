//! `hvac`: the HVAC demo's binary. Everything lives in the `actor_hvac` library.

use clap::Parser;

fn main() {
    // First: in an actor's process this runs the actor and exits; only the root goes on.
    let registry = actor_hvac::registry().run_if_child();
    let cli = match actor_hvac::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; a bad command line says why
            // on stderr and exits with EX_USAGE (clap's own exit code, 2, is the code of a
            // failed device).
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                actor_hvac::EXIT_USAGE
            } else {
                0
            });
        }
    };
    std::process::exit(actor_hvac::run(registry, &cli));
}
