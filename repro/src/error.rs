//! What can go wrong in a command, typed by whose fault it is, with one mapping to exit codes:
//! 2 when the input is bad (an unreadable or invalid manifest, a missing report folder), 1 when
//! the program could not do its own work (a write that failed).

use std::fmt;
use std::process::ExitCode;

#[derive(Debug)]
pub enum Error {
    /// The caller's input: fix it and run again. Exit 2.
    BadInput(String),
    /// This program's own work failed (I/O while writing). Exit 1.
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadInput(_) => crate::cli::EXIT_USAGE,
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
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}
