//! Static configuration: reading, validating and reporting errors in the YAML file.
//!
//! [`load`] reads a file, [`parse`] parses text; both return a [`crate::model::Snapshot`]-ready [`schema::Config`] only
//! when it is valid, and otherwise a [`ConfigError`] that names the file, line and field and says what was expected.

pub mod access_log;
pub mod duration;
mod locate;
pub mod plugin;
pub mod schema;
pub mod telemetry;
pub mod tls;
pub mod tracing;

use std::{fmt, path::Path};

pub use duration::Dur;
pub use schema::Config;

/// A configuration problem, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `<inline>` for text given directly).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field path, e.g. `listeners[0].virtual_hosts[0].routes[1].cluster`; empty for the whole file.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A validation failure found after parsing: a field path and a message. [`parse`] adds file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Field path in serde's notation.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Invalid {
    /// Builds a validation failure.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: None,
        field: String::new(),
        message: format!("cannot read the config file: {e}; check the path and its permissions"),
    })?;
    parse(&text, &file)
}

/// Parses and validates config text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let at = |field: String, message: String, line: Option<usize>| ConfigError {
        line: line.or_else(|| locate::line_of(text, &field)),
        file: file.to_string(),
        field,
        message,
    };
    if text.trim().is_empty() {
        return Err(at(
            String::new(),
            "the file is empty; it needs at least one listener".into(),
            None,
        ));
    }
    let de = serde_yaml::Deserializer::from_str(text);
    let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        let field = if field == "." { String::new() } else { field };
        at(field, clean_serde_message(&inner.to_string()), line)
    })?;
    if let Some(dir) = Path::new(file)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        resolve_module_paths(&mut config, dir);
    }
    crate::model::validate(&config).map_err(|inv| at(inv.field, inv.message, None))?;
    Ok(config)
}

/// Makes relative module paths in plugin `url`s relative to the config file's directory (as the user wrote them)
/// rather than to wherever the proxy was started.
fn resolve_module_paths(config: &mut Config, dir: &Path) {
    for p in plugins_mut(config) {
        if let Some(url) = &p.url
            && let Some(abs) = crate::wasm::plugin::resolve_relative(url, dir)
        {
            p.url = Some(abs);
        }
    }
}

/// Every plugin entry of `config`: the listeners' and the routes'.
pub fn plugins_mut(config: &mut Config) -> impl Iterator<Item = &mut plugin::WasmPlugin> {
    config.listeners.iter_mut().flat_map(|l| {
        let routes = l
            .virtual_hosts
            .iter_mut()
            .flat_map(|v| v.routes.iter_mut())
            .flat_map(|r| r.filters.iter_mut());
        l.filters.iter_mut().chain(routes)
    })
}

/// serde_yaml's messages repeat the path and end with "at line N column M"; keep only the explanation.
fn clean_serde_message(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    let msg = match msg.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') && !head.is_empty() => rest,
        _ => msg,
    };
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: { prefix: / }
            cluster: app
clusters:
  - name: app
    endpoints: [\"127.0.0.1:9\"]
";

    #[test]
    fn relative_module_paths_are_relative_to_the_config_file() {
        let with_plugin = |url: &str| {
            GOOD.replace(
                "    virtual_hosts:",
                &format!("    filters: [{{ name: p, url: \"{url}\" }}]\n    virtual_hosts:"),
            )
        };
        // (config file, url) -> the path the error names
        let cases = [
            ("/etc/mesh/proxy.yaml", "f.wasm", "/etc/mesh/f.wasm"),
            ("/etc/mesh/proxy.yaml", "file:///opt/f.wasm", "/opt/f.wasm"),
            ("/etc/mesh/proxy.yaml", "/abs/f.wasm", "/abs/f.wasm"),
            ("proxy.yaml", "f.wasm", "`f.wasm`"),
        ];
        for (file, url, want) in cases {
            let err = parse(&with_plugin(url), file).expect_err("no such module");
            assert!(err.message.contains(want), "{file} {url}: {err}");
            assert_eq!(err.field, "listeners[0].filters[0]");
        }
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let cfg = parse(GOOD, "good.yaml").expect("valid");
        assert_eq!(cfg.listeners[0].max_connections, 10_000);
        assert_eq!(
            cfg.listeners[0].virtual_hosts[0].routes[0].timeout,
            Dur::secs(15)
        );
        assert_eq!(cfg.clusters[0].connect_timeout, Dur::secs(5));
        assert_eq!(cfg.admin.address, "127.0.0.1:19000");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases: &[(&str, &str, Option<usize>, &str, &str)] = &[
            (
                "unknown field",
                "listeners:\n  - name: m\n    adress: x\n",
                Some(3),
                "listeners[0].adress",
                "unknown field `adress`, expected one of",
            ),
            (
                "bad duration",
                &GOOD.replace("cluster: app", "cluster: app\n            timeout: 15"),
                Some(10),
                "listeners[0].virtual_hosts[0].routes[0].timeout",
                "has no unit",
            ),
            (
                "unknown cluster",
                &GOOD.replace("cluster: app", "cluster: nope"),
                Some(9),
                "listeners[0].virtual_hosts[0].routes[0].cluster",
                "unknown cluster `nope`",
            ),
            (
                "bad enum",
                &format!("{GOOD}    lb_policy: random\n"),
                Some(13),
                "clusters[0].lb_policy",
                "unknown variant `random`",
            ),
            ("empty", "  \n", None, "", "empty"),
            (
                "not yaml",
                "listeners: [\n",
                Some(2),
                "listeners",
                "did not find expected",
            ),
        ];
        for (name, text, line, field, msg) in cases {
            let err = parse(text, "f.yaml").expect_err(name);
            assert_eq!(err.file, "f.yaml", "{name}");
            assert_eq!(err.line, *line, "{name}: {err}");
            assert_eq!(err.field, *field, "{name}: {err}");
            assert!(err.message.contains(msg), "{name}: {err}");
        }
    }

    #[test]
    fn display_is_one_line() {
        let e = ConfigError {
            file: "a.yaml".into(),
            line: Some(3),
            field: "x.y".into(),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "a.yaml:3: field `x.y`: bad");
    }
}
