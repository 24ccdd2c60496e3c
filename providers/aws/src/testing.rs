//! A moto server for tests: the real AWS emulator, one fresh server per test, on 127.0.0.1 with
//! a port the OS picks. `scripts/test` installs the pinned moto into a virtual environment and
//! exports `LAPSE_MOTO_PYTHON`; without it the test fails and says how to install moto.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Starts moto's threaded server, prints its port, and serves until its stdin closes.
const LAUNCHER: &str = r#"
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"#;

/// A running moto server; stopped when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("LAPSE_MOTO_PYTHON") {
        return PathBuf::from(python);
    }
    // Where `scripts/test` puts it for a default target folder.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/moto-venv/bin/python")
}

impl MotoServer {
    /// Starts a fresh server with AWS-managed policies loaded (as IAM has them).
    ///
    /// # Panics
    /// When moto is not installed or does not start: these tests need it.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a fresh server with extra moto settings (`INITIAL_NO_AUTH_ACTION_COUNT` turns on
    /// IAM policy enforcement after that many calls).
    ///
    /// # Panics
    /// When moto is not installed or does not start: these tests need it.
    #[must_use]
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        let python = python();
        let mut child = Command::new(&python)
            .args(["-c", LAUNCHER])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .envs(settings.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start moto with {}: {error}. Run scripts/test, which installs the pinned moto, or set LAPSE_MOTO_PYTHON",
                    python.display()
                )
            });
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "moto did not report its port (got {line:?}); is moto installed for {}?",
                python.display()
            )
        });
        MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Closing stdin lets the server stop cleanly; kill is the fallback.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
