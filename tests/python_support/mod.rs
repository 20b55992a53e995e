//! A Python virtualenv holding pinned PyPI packages (a seed system's real client), made
//! once per package list under the target directory and reused by later runs.
//!
//! Without `python3`, its `venv` module or a reachable PyPI, [`venv`] prints why the test
//! skips and returns `None`; with `PORTCULLIS_STRICT_TESTS=1` (CI) it fails instead.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// One virtualenv.
pub struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// Runs `script` (Python source, passed with `-c`) with `env` set; the output is
    /// returned whatever the exit status.
    pub fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(self.python());
        cmd.arg("-c").arg(script).stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("the venv's python runs")
    }

    /// Runs `script` and returns its stdout, failing the test with stderr when it exits
    /// with an error.
    pub fn run_ok(&self, script: &str, env: &[(&str, &str)]) -> String {
        let out = self.run(script, env);
        assert!(
            out.status.success(),
            "python failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn strict() -> bool {
    std::env::var("PORTCULLIS_STRICT_TESTS").as_deref() == Ok("1")
}

fn skip(test: &str, why: &str) -> Option<Venv> {
    if strict() {
        panic!("{test}: {why}, and PORTCULLIS_STRICT_TESTS=1");
    }
    println!("{test}: skipped: {why}");
    None
}

/// Tests of one binary make the venv one at a time.
static MAKING: Mutex<()> = Mutex::new(());

fn sh(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

fn make(dir: &Path, packages: &[&str]) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    sh(Command::new("python3").arg("-m").arg("venv").arg(dir))
        .map_err(|e| format!("python3 -m venv failed (apt-get install python3-venv): {e}"))?;
    sh(Command::new(dir.join("bin").join("pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--timeout",
            "30",
            "--retries",
            "2",
        ])
        .args(packages))
    .map_err(|e| format!("pip could not install {}: {e}", packages.join(" ")))?;
    std::fs::write(dir.join(".portcullis-ready"), packages.join("\n"))
        .map_err(|e| format!("cannot mark the venv ready: {e}"))
}

/// The venv with exactly `packages` (pinned `name==version` requirements), or `None`
/// (printed: skipped, and why) when it cannot be made here.
pub fn venv(test: &str, packages: &[&str]) -> Option<Venv> {
    let found = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        return skip(test, "python3 not installed");
    }
    let name: String = packages
        .join("_")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' })
        .collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("python-venvs")
        .join(name);
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join(".portcullis-ready").exists()
        && let Err(why) = make(&dir, packages)
    {
        return skip(test, &why);
    }
    Some(Venv { dir })
}
