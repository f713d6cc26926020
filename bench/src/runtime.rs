//! Every tool runs on one thread: a single-threaded tokio runtime leaves the second core to the
//! servers under test and is enough for loopback sockets.

use std::future::Future;
use std::process::ExitCode;

use crate::report;

/// Run `main` to completion on a current-thread runtime; exit status 1 if none can be built.
pub fn block_on<F: Future<Output = ExitCode>>(main: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(main),
        Err(e) => report::fail(&format!("tokio runtime: {e}")),
    }
}
