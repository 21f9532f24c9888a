//! What the command line prints: lines on standard output that end quietly when the reader has gone.

/// Writes a line to standard output. A closed pipe (`shipwatch project list | head -1`) ends the output quietly
/// instead of panicking like `println!`.
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}
