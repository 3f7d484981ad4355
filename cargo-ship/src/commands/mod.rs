//! One module per subcommand. Each turns its raw flags into validated settings, then works.

mod init;
mod plan;

use crate::cli::{Command, Ship};
use crate::{CliError, Context};

/// Runs the subcommand.
pub fn run(ship: &Ship, cx: &mut Context) -> Result<(), CliError> {
    match &ship.command {
        Command::Plan(args) => plan::run(ship, args, cx),
        Command::Init(args) => init::run(ship, args, cx),
    }
}
