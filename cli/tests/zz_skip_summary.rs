//! One line a person sees at the end of `cargo test --workspace`: which groups of tests skipped
//! because a program or a corpus they need is missing on this machine, and how to get it.
//! The tests themselves skip quietly (their notices are captured by the test harness), so
//! without this a fresh clone would look fully tested. Under `PORTCULLIS_STRICT_TESTS=1`
//! (CI) a skip fails its own test; this summary fails too.
//!
//! A plain `main` (`harness = false` in cli/Cargo.toml), so its output is never captured;
//! in the last package of the workspace and named `zz_`, because cargo runs packages and
//! their test binaries by name: it comes after every other test binary (the doc tests
//! follow).

use std::path::{Path, PathBuf};
use std::process::Command;

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn main() {
    let wycheproof = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/wycheproof");
    let python_venv = || {
        Command::new("python3")
            .args(["-c", "import venv, ensurepip"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let groups: [(&str, bool, &str); 6] = [
        (
            "Wycheproof JWS/JWK vectors (tests/wycheproof.rs)",
            wycheproof.is_dir(),
            "needs ../shared/testdata/wycheproof beside the checkout",
        ),
        (
            "Redis revocation and records (tests/redis.rs, cli/tests/revoke_cli.rs)",
            which("redis-server").is_some(),
            "apt-get install redis-server",
        ),
        (
            "nginx forward auth (cli/tests/forward_auth.rs)",
            which("nginx").is_some(),
            "apt-get install nginx",
        ),
        (
            "Caddy forward auth (cli/tests/forward_auth.rs)",
            which("caddy").is_some(),
            "apt-get install caddy",
        ),
        (
            "promtool on /metrics (cli/tests/metrics.rs)",
            which("promtool").is_some(),
            "apt-get install prometheus",
        ),
        (
            "the Python clients (aistore, authress, kamiwaza, envoy_ext_authz, resource_metadata_mcp tests)",
            python_venv(),
            "apt-get install python3-venv (and PyPI reachable)",
        ),
    ];
    let skipped: Vec<String> = groups
        .iter()
        .filter(|(_, present, _)| !present)
        .map(|(what, _, how)| format!("{what}: {how}"))
        .collect();
    if skipped.is_empty() {
        println!("portcullis: no test group skipped (every external program and corpus found)");
        return;
    }
    println!(
        "portcullis: SKIPPED {} test group(s) (they passed without running): {}",
        skipped.len(),
        skipped.join("; ")
    );
    if std::env::var("PORTCULLIS_STRICT_TESTS").as_deref() == Ok("1") {
        eprintln!("PORTCULLIS_STRICT_TESTS=1: a skipped group is a failure");
        std::process::exit(1);
    }
}
