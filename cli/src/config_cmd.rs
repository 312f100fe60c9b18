//! `meshwork config validate DIR`: reads a directory of Istio YAML as the control plane does and reports every
//! problem at once — load errors (YAML, unknown fields and kinds, API versions, duplicates) and the analysis
//! (invalid values, references that lead nowhere, features meshwork does not apply yet) — like `istioctl analyze`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args as ClapArgs, Subcommand};
use meshwork_control::istio::{Diagnostic, analyze, read_dir};

/// Work with the control plane's configuration.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a directory of Istio YAML without applying it.
    ///
    /// Reads every *.yaml and *.yml file in DIR (sorted by name; subdirectories are not read), with multi-document
    /// files and Kubernetes `List`s, as `meshwork control` reads them. The kinds read are ServiceEntry,
    /// WorkloadEntry, VirtualService, DestinationRule (networking.istio.io v1, v1beta1, v1alpha3),
    /// PeerAuthentication, AuthorizationPolicy (security.istio.io v1, v1beta1) and WasmPlugin
    /// (extensions.istio.io v1alpha1).
    ///
    /// Prints one line per finding, `error:` or `warning:`, then FILE:LINE, the field and what to do, and a summary
    /// line. Errors: YAML that does not parse, unknown kinds and fields, wrong API versions, missing names, duplicate
    /// names, and values that cannot apply (weights, percentages, regexes, durations, statuses, ports, sha256, module
    /// URLs). Warnings: routes to hosts no ServiceEntry defines, undefined subsets, selectors that select nothing,
    /// WorkloadEntries no service uses, and VirtualService features meshwork does not apply yet.
    ///
    /// Exit status: 0 when there are no errors (warnings alone pass), 1 when there are errors (or warnings, with
    /// --strict), 2 when DIR cannot be read.
    Validate {
        /// The directory of Istio YAML files.
        dir: PathBuf,
        /// Fail (exit status 1) on warnings too.
        #[arg(long)]
        strict: bool,
    },
}

/// Runs `meshwork config ...`; the exit status is the command's verdict.
pub fn run(args: Args) -> ExitCode {
    match args.command {
        Cmd::Validate { dir, strict } => validate(&dir, strict),
    }
}

fn validate(dir: &std::path::Path, strict: bool) -> ExitCode {
    let (loaded, mut diags) = match read_dir(dir) {
        Ok(read) => read,
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "the CLI's own error output")]
            {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    diags.extend(analyze(&loaded));
    diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    let lines = report(&diags, loaded.resources_seen, loaded.files.len());
    #[expect(clippy::print_stdout, reason = "the CLI's own output")]
    {
        println!("{}", lines.join("\n"));
    }
    ExitCode::from(verdict(&diags, strict))
}

/// The lines printed: each finding with its severity, then the summary.
fn report(diags: &[Diagnostic], resources: usize, files: usize) -> Vec<String> {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let mut lines: Vec<String> = diags
        .iter()
        .map(|d| format!("{}: {d}", d.severity))
        .collect();
    lines.push(format!(
        "{}, {} in {} from {}",
        count(errors, "error"),
        count(warnings, "warning"),
        count(resources, "resource"),
        count(files, "file")
    ));
    lines
}

/// `1 error`, `2 errors`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// The exit status: 1 when there are errors, or warnings with `strict`; else 0.
fn verdict(diags: &[Diagnostic], strict: bool) -> u8 {
    u8::from(diags.iter().any(|d| d.is_error() || strict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwork_control::istio::FieldPath;

    #[test]
    fn report_and_verdict() {
        let err = Diagnostic::error(
            "a.yaml",
            Some(3),
            Some(FieldPath::parse("spec.host")),
            "bad host",
        );
        let warn = Diagnostic::warning("b.yaml", Some(1), None, "unused");
        let cases: &[(Vec<Diagnostic>, usize, usize, &[&str], [u8; 2])] = &[
            (
                vec![],
                1,
                1,
                &["0 errors, 0 warnings in 1 resource from 1 file"],
                [0, 0],
            ),
            (
                vec![warn.clone()],
                2,
                2,
                &[
                    "warning: b.yaml:1: unused",
                    "0 errors, 1 warning in 2 resources from 2 files",
                ],
                [0, 1],
            ),
            (
                vec![err.clone(), warn.clone(), err],
                7,
                4,
                &[
                    "error: a.yaml:3: field `spec.host`: bad host",
                    "warning: b.yaml:1: unused",
                    "error: a.yaml:3: field `spec.host`: bad host",
                    "2 errors, 1 warning in 7 resources from 4 files",
                ],
                [1, 1],
            ),
        ];
        for (diags, resources, files, want, [lenient, strict]) in cases {
            assert_eq!(report(diags, *resources, *files), *want);
            assert_eq!(verdict(diags, false), *lenient);
            assert_eq!(verdict(diags, true), *strict);
        }
    }
}
