//! `portcullis lint`: mistakes in a policy file, an access-record file or both, with file
//! and line.
//!
//! Errors are what the library refuses to load (syntax, bad patterns, rules shadowed by
//! public entries, roles in records that are not defined); warnings are what loads but is
//! probably not meant (duplicate rules, rules nothing can reach or that grant nothing new,
//! public prefixes that open part of a guarded route, roles never granted, token roles no
//! rule names).

mod policy;
mod records;

use std::path::PathBuf;

use crate::{EXIT_NO, Fail, Report};

const AFTER: &str = "\
Prints one line per finding, `FILE:LINE: error: ...` or `FILE:LINE: warning: ...`, then a
count. Errors: what `serve` and the library refuse to load (TOML syntax, unknown fields, bad
patterns or methods, rules a public prefix or public gRPC method fully shadows, roles used
in records but not defined). Warnings: duplicate rules, patterns no request can reach
(encoded dot segments, characters a request path never holds, more than 256 segments),
rules that grant nothing beyond an earlier rule open to any valid token, public prefixes
or methods that make part of a guarded rule public, inherited roles no rule names, roles
defined in records but never granted, token roles in records that no policy rule names.

Either file may be linted alone; token roles in records are checked against the policy
only when --policy is given too.

Exit codes: 0 no errors (warnings allowed unless --deny-warnings), 1 errors found, 2 a file
cannot be read.

Examples:
  portcullis lint --policy policy.toml
  portcullis lint --records access.toml
  portcullis lint --policy policy.toml --records access.toml --deny-warnings";

/// Arguments of `lint`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
#[command(group(
    clap::ArgGroup::new("files")
        .args(["policy", "records"])
        .required(true)
        .multiple(true)
))]
pub(crate) struct Args {
    /// The TOML policy file
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The access-record file (TOML or JSON)
    #[arg(long, value_name = "FILE")]
    records: Option<PathBuf>,
    /// Exit 1 on warnings too
    #[arg(long)]
    deny_warnings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Error,
    Warning,
}

/// One finding.
struct Finding {
    file: String,
    line: usize,
    level: Level,
    message: String,
}

#[derive(Default)]
pub(crate) struct Findings(Vec<Finding>);

impl Findings {
    pub(crate) fn add(
        &mut self,
        file: &str,
        line: usize,
        level: Level,
        message: impl Into<String>,
    ) {
        self.0.push(Finding {
            file: file.to_owned(),
            line,
            level,
            message: message.into(),
        });
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .unwrap_or(text)
        .matches('\n')
        .count()
        + 1
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    let read = |flag: &str, p: &PathBuf| {
        std::fs::read_to_string(p)
            .map_err(|e| Fail::usage(format!("{flag}: cannot read `{}`: {e}", p.display())))
    };
    let policy_text = args
        .policy
        .as_ref()
        .map(|p| read("--policy", p))
        .transpose()?;
    let records_text = args
        .records
        .as_ref()
        .map(|p| read("--records", p))
        .transpose()?;
    let mut f = Findings::default();
    let doc = match (&args.policy, &policy_text) {
        (Some(path), Some(text)) => policy::lint_policy(&path.display().to_string(), text, &mut f),
        _ => None,
    };
    if let (Some(path), Some(text)) = (&args.records, &records_text) {
        records::lint_records(
            &path.display().to_string(),
            path,
            text,
            doc.as_ref(),
            &mut f,
        );
    }
    f.0.sort_by(|a, b| (&a.file, a.line, a.level).cmp(&(&b.file, b.line, b.level)));
    let mut out = String::new();
    let (mut errors, mut warnings) = (0, 0);
    for x in &f.0 {
        let word = match x.level {
            Level::Error => {
                errors += 1;
                "error"
            }
            Level::Warning => {
                warnings += 1;
                "warning"
            }
        };
        if x.line > 0 {
            out.push_str(&format!("{}:{}: {word}: {}\n", x.file, x.line, x.message));
        } else {
            out.push_str(&format!("{}: {word}: {}\n", x.file, x.message));
        }
    }
    out.push_str(&format!("{errors} error(s), {warnings} warning(s)\n"));
    let failed = errors > 0 || (args.deny_warnings && warnings > 0);
    Ok(Report {
        stdout: out,
        code: if failed { EXIT_NO } else { 0 },
    })
}
