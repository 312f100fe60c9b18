//! `meshwork filter new NAME`: a ready-to-build filter crate from the template in `cli/templates/filter/`
//! (Cargo.toml, src/lib.rs, README.md, .gitignore, and tests/harness.rs when a meshwork checkout's host crate is given).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The template's files: (path in the new crate, content with `{{key}}` placeholders).
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/filter/Cargo.toml.tmpl"),
    ),
    ("src/lib.rs", include_str!("../templates/filter/src/lib.rs")),
    ("README.md", include_str!("../templates/filter/README.md")),
    (".gitignore", include_str!("../templates/filter/gitignore")),
];

/// Written only with `--host-path`: it needs `meshwork-host` as a dev-dependency.
const HARNESS_TEST: (&str, &str) = (
    "tests/harness.rs",
    include_str!("../templates/filter/tests/harness.rs"),
);

/// What to create.
pub struct NewFilter {
    /// The crate's name.
    pub name: String,
    /// Where (default: `./NAME`).
    pub dir: Option<PathBuf>,
    /// `meshwork-sdk` as a path dependency on this directory, instead of a crates.io version.
    pub sdk_path: Option<PathBuf>,
    /// `meshwork-host` as a path dev-dependency on this directory, for the harness test.
    pub host_path: Option<PathBuf>,
}

/// Creates the crate and prints what to do next.
pub fn run(args: NewFilter) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!(
            "{} already exists; `meshwork filter new` never overwrites: choose another NAME or --dir",
            dir.display()
        );
    }
    let sdk = args
        .sdk_path
        .as_deref()
        .map(|p| checkout_crate(p, "meshwork-sdk", "--sdk-path"))
        .transpose()?;
    let host = args
        .host_path
        .as_deref()
        .map(|p| checkout_crate(p, "meshwork-host", "--host-path"))
        .transpose()?;
    let vars = variables(&args.name, sdk.as_deref(), host.as_deref());
    let mut files: Vec<(&str, &str)> = FILES.to_vec();
    if host.is_some() {
        files.push(HARNESS_TEST);
    }
    for (path, template) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, render(template, &vars))
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    let lock = seed_lockfile(&dir, sdk.as_deref().or(host.as_deref()))?;
    report(&args.name, &dir, lock.as_deref(), host.is_some());
    Ok(())
}

/// Cargo's rules for a package name, with a message saying which one NAME breaks.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    const RESERVED: &[&str] = &[
        "test",
        "core",
        "std",
        "alloc",
        "proc_macro",
        "proc-macro",
        "self",
        "super",
        "crate",
        "Self",
    ];
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern",
        "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe",
        "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
        "priv", "try", "typeof", "unsized", "virtual", "yield",
    ];
    let why = match name.chars().next() {
        None => Some("it is empty".to_string()),
        Some(c) if !c.is_ascii_alphabetic() => {
            Some(format!("it must start with a letter, not `{c}`"))
        }
        _ => None,
    }
    .or_else(|| {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            .map(|c| format!("`{c}` is not allowed: use letters, digits, `-` and `_`"))
    })
    .or_else(|| (name.len() > 64).then(|| "it is longer than 64 characters".to_string()))
    .or_else(|| {
        RESERVED
            .iter()
            .chain(KEYWORDS)
            .any(|k| *k == name || k.replace('-', "_") == name.replace('-', "_"))
            .then(|| "it is a Rust keyword or a reserved crate name".to_string())
    });
    match why {
        Some(why) => bail!("`{name}` cannot be a crate name: {why}"),
        None => Ok(()),
    }
}

/// The absolute path of the crate in `dir`, checked to be `package` (a meshwork checkout's `sdk/` or `host/`).
fn checkout_crate(dir: &Path, package: &str, flag: &str) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "{flag} {}: no Cargo.toml there; give the `{}` folder of a meshwork checkout",
            dir.display(),
            package.trim_start_matches("meshwork-")
        )
    })?;
    if !text.contains(&format!("name = \"{package}\"")) {
        bail!("{flag} {}: that crate is not `{package}`", dir.display());
    }
    std::fs::canonicalize(dir).with_context(|| format!("{flag} {}", dir.display()))
}

/// The placeholder values for the templates.
fn variables(name: &str, sdk: Option<&Path>, host: Option<&Path>) -> Vec<(&'static str, String)> {
    let lib = name.replace('-', "_");
    let (sdk_dep, sdk_note) = match sdk {
        Some(p) => (
            format!("meshwork-sdk = {{ path = {} }}", toml_string(p)),
            format!(
                "`meshwork-sdk` comes from a meshwork checkout (`{}`); the crate's `Cargo.lock` started from that \
                 checkout's, so it builds with the versions meshwork is tested with.",
                p.display()
            ),
        ),
        None => (
            "meshwork-sdk = \"0.1\"".to_string(),
            "`meshwork-sdk` is not published on crates.io yet: until it is, point the dependency at a meshwork \
             checkout, `meshwork-sdk = { path = \"/path/to/meshwork/sdk\" }` in Cargo.toml (or create the crate with \
             `meshwork filter new NAME --sdk-path /path/to/meshwork/sdk`)."
                .to_string(),
        ),
    };
    let (dev, test_note, harness_note) = match host {
        Some(p) => (
            format!(
                "\n[dev-dependencies]\n# The test harness of tests/harness.rs: meshwork's engine, from a meshwork checkout.\n\
                 meshwork-host = {{ path = {} }}\nserde_json = \"1\"\n",
                toml_string(p)
            ),
            ", and tests/harness.rs: builds the module, then runs requests through it".to_string(),
            "`tests/harness.rs` drives the compiled module with `meshwork_host::wasm::harness` (a dev-dependency on \
             the `host/` crate of a meshwork checkout): it runs `cargo build --release --target wasm32-wasip1` first, \
             then loads the module with a `pluginConfig` and checks each decision, a refused configuration included. \
             The first `cargo test` compiles meshwork's engine (wasmtime), which takes a few minutes."
                .to_string(),
        ),
        None => (
            String::new(),
            String::new(),
            "To test the compiled module from Rust, with `meshwork_host::wasm::harness` (requests driven phase by \
             phase, callouts answered, the clock moved), create the crate with `--host-path /path/to/meshwork/host`: \
             it then has a `tests/harness.rs` and the dev-dependencies it needs."
                .to_string(),
        ),
    };
    vec![
        ("name", name.to_string()),
        ("lib", lib),
        ("sdk", sdk_dep),
        ("sdk_note", sdk_note),
        ("dev_dependencies", dev),
        ("harness_test_note", test_note),
        ("harness_note", harness_note),
    ]
}

/// `template` with every `{{key}}` replaced.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    vars.iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

/// A TOML basic string holding `p`.
fn toml_string(p: &Path) -> String {
    let s = p.display().to_string();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Copies the Cargo.lock of the meshwork checkout that holds `from` (if any) into the new crate, so its first build
/// resolves to versions that are known to work (and that are in the local registry cache, for offline builds).
fn seed_lockfile(dir: &Path, from: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let Some(lock) = from
        .into_iter()
        .flat_map(Path::ancestors)
        .map(|a| a.join("Cargo.lock"))
        .find(|l| l.is_file())
    else {
        return Ok(None);
    };
    std::fs::copy(&lock, dir.join("Cargo.lock"))
        .with_context(|| format!("cannot copy {}", lock.display()))?;
    Ok(Some(lock))
}

fn report(name: &str, dir: &Path, lock: Option<&Path>, harness: bool) {
    let lib = name.replace('-', "_");
    let mut out = vec![format!(
        "created filter crate `{name}` in {}",
        dir.display()
    )];
    if let Some(lock) = lock {
        out.push(format!("  Cargo.lock started from {}", lock.display()));
    }
    out.push("next:".into());
    out.push(format!("  meshwork filter build {}", dir.display()));
    out.push(format!(
        "  meshwork filter test {}/target/wasm32-wasip1/release/{lib}.wasm --config '{{\"requiredHeader\": \"x-team\"}}' -H 'x-team: blue'",
        dir.display()
    ));
    if harness {
        out.push(format!(
            "  cd {} && cargo test    # unit tests, then tests/harness.rs",
            dir.display()
        ));
    }
    #[expect(clippy::print_stdout, reason = "the CLI's own output")]
    {
        println!("{}", out.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("my-filter", None),
            ("auth_v2", None),
            ("A1", None),
            ("", Some("it is empty")),
            ("1filter", Some("start with a letter")),
            ("-x", Some("start with a letter")),
            ("my filter", Some("` ` is not allowed")),
            ("my.filter", Some("`.` is not allowed")),
            ("café", Some("`é` is not allowed")),
            ("test", Some("reserved")),
            ("proc-macro", Some("reserved")),
            ("fn", Some("keyword")),
            (&"a".repeat(65), Some("longer than 64")),
        ];
        for (name, want) in cases {
            match (validate_name(name), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for (sdk, host) in [
            (None, None),
            (Some(Path::new("/m/sdk")), Some(Path::new("/m/host"))),
        ] {
            let vars = variables("my-filter", sdk, host);
            for (path, template) in FILES.iter().chain([&HARNESS_TEST]) {
                let text = render(template, &vars);
                // `{{` alone is Rust (`proxy_wasm::main! {{ ... }}`); `{{key}}` is a placeholder left over.
                let left = text.split("{{").skip(1).find(|rest| {
                    rest.split_once("}}").is_some_and(|(key, _)| {
                        !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
                });
                assert_eq!(left, None, "{path}");
            }
            let cargo = render(FILES[0].1, &vars);
            assert!(cargo.contains("name = \"my-filter\""), "{cargo}");
            assert_eq!(
                cargo.contains("meshwork-host = { path = \"/m/host\" }"),
                host.is_some()
            );
            assert_eq!(cargo.contains("meshwork-sdk = \"0.1\""), sdk.is_none());
        }
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(Path::new("/a/b")), "\"/a/b\"");
        assert_eq!(toml_string(Path::new("/a\"b\\c")), "\"/a\\\"b\\\\c\"");
    }
}
