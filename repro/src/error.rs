//! What can go wrong in a command, typed by whose fault it is, with one mapping to exit codes:
//! 2 when the input is bad (an unreadable or invalid manifest, a missing report folder), 1 when
//! the program could not do its own work (a write that failed).

use std::fmt;
use std::process::ExitCode;

/// Exit code for bad input (unknown device, backend not compiled in, bad flags, an unreadable
/// manifest): what `Error::BadInput` maps to.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug)]
pub enum Error {
    /// The caller's input: fix it and run again. Exit 2.
    BadInput(String),
    /// This program's own work failed (I/O while writing). Exit 1.
    Internal(String),
}

impl Error {
    pub fn input(m: impl Into<String>) -> Self {
        Error::BadInput(m.into())
    }

    pub fn internal(m: impl Into<String>) -> Self {
        Error::Internal(m.into())
    }

    /// A failed write or other I/O of this program's own, named by its path.
    pub fn io(path: &std::path::Path, e: impl fmt::Display) -> Self {
        Error::Internal(format!("{}: {e}", path.display()))
    }

    /// An input file that cannot be read or parsed, named by its path.
    pub fn unreadable(path: &std::path::Path, e: impl fmt::Display) -> Self {
        Error::BadInput(format!("{}: {e}", path.display()))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadInput(_) => EXIT_USAGE,
            Error::Internal(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadInput(m) | Error::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// One line on stderr and the error's exit code.
pub fn exit(e: Error) -> ExitCode {
    harness::cli::fail(e.exit_code(), e)
}

/// What every command returns: an exit code (0, or 3 where a verdict differs from a manifest),
/// or an error.
pub type Outcome = Result<u8, Error>;

/// The one mapping from a command's outcome to the process's exit code.
pub fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit(e),
    }
}
