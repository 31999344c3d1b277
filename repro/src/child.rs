//! One way to run a copy of this binary as a child: spawn it, read what it prints line by line
//! with a deadline, kill it when it stays silent too long, and say how it ended (signal names
//! included). The suite runner and the sweep both use it, so no wait anywhere is without a limit.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running child whose stdout arrives as lines and whose stderr is drained in the background
/// (a child that fills a pipe nobody reads would otherwise block forever).
pub struct LineChild {
    child: Child,
    lines: Receiver<String>,
    stderr: JoinHandle<Vec<u8>>,
}

/// What waiting for the next line gave.
pub enum Next {
    Line(String),
    /// Nothing arrived before the deadline; the child is still running.
    Silent,
    /// Stdout closed: the child has ended or is ending.
    Closed,
}

/// How a child ended.
#[derive(Debug)]
pub enum Ended {
    Exited(ExitStatus),
    /// Killed by us at a deadline.
    Killed,
}

impl LineChild {
    pub fn spawn(mut cmd: Command) -> std::io::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(LineChild {
            child,
            lines,
            stderr,
        })
    }

    /// The next stdout line, waiting no later than `until`.
    pub fn next_line(&self, until: Instant) -> Next {
        let left = until.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => Next::Line(line),
            Err(RecvTimeoutError::Timeout) => Next::Silent,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// Waits for the child to end, killing it at `until`; returns how it ended and its stderr.
    pub fn finish(mut self, until: Instant) -> std::io::Result<(Ended, Vec<u8>)> {
        let ended = loop {
            if let Some(status) = self.child.try_wait()? {
                break Ended::Exited(status);
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break Ended::Killed;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.join().unwrap_or_default();
        Ok((ended, stderr))
    }

    /// Kills the child now; returns its stderr.
    pub fn kill(self) -> std::io::Result<Vec<u8>> {
        self.finish(Instant::now()).map(|(_, e)| e)
    }

    /// Runs the child to its end, collecting every stdout line, killing it at `until`.
    pub fn collect(self, until: Instant) -> std::io::Result<(Ended, Vec<String>, Vec<u8>)> {
        let mut lines = Vec::new();
        loop {
            match self.next_line(until) {
                Next::Line(l) => lines.push(l),
                Next::Closed => break,
                Next::Silent => {
                    if Instant::now() >= until {
                        break;
                    }
                }
            }
        }
        let (ended, stderr) = self.finish(until)?;
        Ok((ended, lines, stderr))
    }
}

impl Ended {
    /// "exited with code 3", "was killed by signal 6 (SIGABRT)", "panicked", "was killed at its
    /// deadline".
    pub fn describe(&self) -> String {
        match self {
            Ended::Exited(s) => describe_status(s),
            Ended::Killed => "was killed at its deadline".into(),
        }
    }

    pub fn code(&self) -> Option<i32> {
        match self {
            Ended::Exited(s) => s.code(),
            Ended::Killed => None,
        }
    }
}

pub fn describe_status(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("was killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(101) => "panicked".into(),
        Some(c) => format!("exited with code {c}"),
        None => "ended without an exit code".into(),
    }
}

/// The last `n` lines of a process's stderr.
pub fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The most telling stderr line: a panic's message (the line after "panicked at"), else the
/// last non-empty line that is not backtrace noise.
pub fn last_words(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    if let Some(i) = lines.iter().rposition(|l| l.contains("panicked at")) {
        if let Some(msg) = lines.get(i + 1) {
            return msg.trim().to_string();
        }
    }
    lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("note:")
                && !l.starts_with("stack backtrace")
                && !l.chars().next().is_some_and(|c| c.is_ascii_digit())
                && !l.starts_with("at ")
        })
        .unwrap_or("(nothing on stderr)")
        .to_string()
}

/// Called first in a child: ends this process when the parent that started it is gone (killed,
/// say, by a signal it could not catch), so a hung or busy child never outlives its run. On
/// Unix a child whose parent dies is handed to another process; the new parent id says so.
pub fn exit_with_parent() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(EXIT_ORPHANED);
            }
        });
    }
}

/// The exit code of a child that found its parent gone.
pub const EXIT_ORPHANED: i32 = 70;
