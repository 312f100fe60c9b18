//! [`Auth`]: the credentials of one registry operation. `Debug` never shows a secret.

use std::fmt;

use base64::Engine;

/// Credentials for a registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No credentials (anonymous tokens are still fetched when the registry asks for a bearer token).
    #[default]
    Anonymous,
    /// A user name and password (or a registry access token used as the password): sent as HTTP Basic to registries
    /// that ask for Basic, and to the token service of registries that ask for a bearer token.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A registry bearer token, sent as is.
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

impl Auth {
    /// The `Authorization` value of HTTP Basic for these credentials, if they are Basic.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Auth::Basic { username, password } => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Some(format!("Basic {encoded}"))
            }
            _ => None,
        }
    }

    /// Tells credentials apart in the token cache without keeping them: a token fetched with one set of credentials is
    /// never handed to an operation with another (or with none).
    pub(crate) fn fingerprint(&self) -> String {
        match self {
            Auth::Anonymous => "anonymous".into(),
            Auth::Basic { username, password } => {
                crate::digest::sha256_hex(format!("basic\0{username}\0{password}").as_bytes())
            }
            Auth::Bearer(token) => crate::digest::sha256_hex(format!("bearer\0{token}").as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_headers() {
        let basic = Auth::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let bearer = Auth::Bearer("tok3n".into());
        assert_eq!(
            format!("{basic:?}"),
            r#"Basic { username: "alice", password: "<redacted>" }"#
        );
        assert_eq!(format!("{bearer:?}"), "Bearer(<redacted>)");
        assert_eq!(
            basic.basic_header().as_deref(),
            Some("Basic YWxpY2U6czNjcmV0")
        );
        assert_eq!(bearer.basic_header(), None);
        let fingerprints = [
            Auth::Anonymous.fingerprint(),
            basic.fingerprint(),
            bearer.fingerprint(),
        ];
        assert!(!fingerprints[1].contains("s3cret") && !fingerprints[2].contains("tok3n"));
        assert_ne!(
            fingerprints[1],
            Auth::Basic {
                username: "alice".into(),
                password: "other".into()
            }
            .fingerprint()
        );
        assert_ne!(fingerprints[0], fingerprints[1]);
    }
}
