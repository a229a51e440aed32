//! `hvac`: the HVAC demo's binary. Everything lives in the `actor_hvac` library.

use clap::Parser;

fn main() {
    // First: in an actor's process this runs the actor and exits; only the root goes on.
    let registry = actor_hvac::registry().run_if_child();
    let cli = actor_hvac::cli::Cli::parse();
    std::process::exit(actor_hvac::run(registry, &cli));
}
