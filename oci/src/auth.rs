//! Registry credentials: what a client presents to a registry, from a Docker config or the command line.

/// How to authenticate to a registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No credentials: public repositories, or a registry's anonymous token.
    #[default]
    Anonymous,
    /// A user name and password (or access token): HTTP Basic, and the credentials sent to a token realm.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// A registry token sent as is in `Authorization: Bearer` (Docker's `registrytoken`).
    Bearer(String),
}

/// Never prints a secret: only the scheme and, for Basic, the user name.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let cases = [
            (Auth::Anonymous, "Anonymous"),
            (
                Auth::Basic {
                    username: "ann".into(),
                    password: "hunter2".into(),
                },
                "Basic { username: \"ann\", password: \"<redacted>\" }",
            ),
            (Auth::Bearer("hunter2".into()), "Bearer(<redacted>)"),
        ];
        for (auth, want) in cases {
            assert_eq!(format!("{auth:?}"), want);
        }
    }
}
