//! One JSON object per line on standard output, flushed at once: the orchestrator reads each
//! line as it comes (a port, progress, a result).

use std::io::Write;

/// Print `value` as one line and flush. A closed standard output is not an error worth dying
/// for here: the orchestrator is gone and `stop` ends the process.
pub fn line(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// Print `{"error": message}` on standard error and return exit status 1.
pub fn fail(message: &str) -> std::process::ExitCode {
    eprintln!("{}", serde_json::json!({ "error": message }));
    std::process::ExitCode::FAILURE
}
