//! `aimem completions <shell>`: a completion script generated from the clap definition.

use clap::Args;
use clap_complete::Shell;

use crate::failure::Outcome;
use crate::output;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `command` is aimem's whole command line (`Cli::command()`), handed down by the face.
pub fn run(args: &CompletionsArgs, mut command: clap::Command) -> Outcome {
    // Generated into memory first: clap_complete panics on a write error, and a closed pipe
    // (`aimem completions bash | head`) is not an error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "aimem", &mut script);
    output::bytes(&script);
    Ok(())
}
