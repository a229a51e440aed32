//! Runs one actor through its lifecycle, whatever the runtime: `init_args`, `startup`,
//! `main_loop`, and `shutdown` always, with panics caught and turned into failures.

use crate::actor::{Actor, Context};
use crate::error::{ActorError, ErrorChain};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// How an actor's life ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `main_loop` returned `Ok` (asked to stop, or done) and `shutdown` ran.
    Clean,
    /// `init_args` or `startup` failed or panicked: the start failed. The chain says why
    /// (`startup failed: ` over the actor's error and its causes).
    StartFailed(ErrorChain),
    /// `main_loop` returned an error or panicked; `shutdown` ran. The chain says why.
    Failed(ErrorChain),
}

impl Outcome {
    /// mptools' exit-code convention: 0 clean, 2 failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Clean => 0,
            Outcome::StartFailed(_) | Outcome::Failed(_) => 2,
        }
    }
}

/// Builds the actor from `args` and runs it. `on_started` is called once `startup` has
/// succeeded (the runtime tells the root then), before `main_loop`.
pub fn run<A: Actor>(
    args: A::Args,
    ctx: &mut Context<A>,
    on_started: impl FnOnce(&mut Context<A>),
) -> Outcome {
    let log = ctx.log().clone();
    let mut actor = match guarded(|| A::init_args(args)) {
        Ok(actor) => actor,
        Err(why) => {
            slog::error!(log, "init_args failed: {why}");
            return Outcome::StartFailed(why.context("init_args failed"));
        }
    };

    slog::debug!(log, "Entering startup");
    if let Err(why) = guarded(|| actor.startup(ctx)) {
        slog::error!(log, "startup failed: {why}");
        run_shutdown(&mut actor, ctx);
        return Outcome::StartFailed(why.context("startup failed"));
    }
    on_started(ctx);

    slog::debug!(log, "Entering main_loop");
    let result = guarded(|| actor.main_loop(ctx));
    if let Err(why) = &result {
        slog::error!(log, "main_loop failed: {why}");
    }
    run_shutdown(&mut actor, ctx);
    match result {
        Ok(()) => Outcome::Clean,
        Err(why) => Outcome::Failed(why),
    }
}

fn run_shutdown<A: Actor>(actor: &mut A, ctx: &mut Context<A>) {
    slog::debug!(ctx.log(), "Entering shutdown");
    if let Err(why) = guarded(|| {
        actor.shutdown(ctx);
        Ok(())
    }) {
        slog::error!(ctx.log(), "shutdown failed: {why}");
    }
}

/// Runs `f`, turning an error or a panic into its chain of messages.
fn guarded<T>(f: impl FnOnce() -> Result<T, ActorError>) -> Result<T, ErrorChain> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.chain()),
        Err(payload) => Err(ErrorChain::from_messages([format!(
            "panicked: {}",
            panic_message(&*payload)
        )])),
    }
}

/// The text of a panic payload (`panic!("…")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}
