//! Bearer tokens and their roles.
//!
//! Tokens come from three places, all merged: `[server] tokens` in the
//! config file (only SHA-256 digests are written there), a token file of
//! `ROLE:TOKEN` lines, and the `TRAWL_TOKENS` environment variable
//! (`ROLE:TOKEN,ROLE:TOKEN`). Only digests are kept in memory. A presented
//! token is hashed and compared with every digest in constant time (no
//! early exit), so neither the comparison nor the position of a match
//! leaks through timing.
//!
//! Roles: `read` (SQL, UI, metrics) and `write` (flow, Firehose and
//! metadata pushes), which implies `read`.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Environment variable holding `ROLE:TOKEN` pairs, comma-separated.
pub const TOKENS_ENV: &str = "TRAWL_TOKENS";

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries, the UI, metrics.
    Read,
    /// Pushes of flows and metadata; implies `Read`.
    Write,
}

impl Role {
    /// Parses `read` or `write`.
    pub fn parse(text: &str) -> Option<Role> {
        match text.trim() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            _ => None,
        }
    }

    /// Whether this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// A token as written in the config file: a name for logs, a role, and
/// the SHA-256 of the token (64 hex digits; `echo -n TOKEN | sha256sum`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds it (for people; not checked).
    #[serde(default)]
    pub name: String,
    /// What it allows.
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub sha256: String,
}

impl TokenEntry {
    /// The digest, or why it is not one.
    pub fn digest(&self) -> Result<[u8; 32], String> {
        let hex = self.sha256.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "token {:?}: sha256 must be 64 hex digits (echo -n TOKEN | sha256sum)",
                self.name
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("token {:?}: sha256 is not hex", self.name))?;
        }
        Ok(out)
    }
}

/// Why tokens could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A line of a token file or of `TRAWL_TOKENS` is not `ROLE:TOKEN`.
    #[error(
        "{place}: expected ROLE:TOKEN with ROLE read or write and a token of 16 or more characters"
    )]
    Malformed {
        /// File and line, or the variable and entry number.
        place: String,
    },
    /// The token file cannot be read.
    #[error("reading token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A digest in the config file is malformed.
    #[error("[server] tokens: {0}")]
    Digest(String),
}

/// Shortest token accepted from a file or the environment.
pub const TOKEN_CHARS_MIN: usize = 16;

/// The known tokens, as digests with roles.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    digests: Vec<([u8; 32], Role)>,
}

impl Tokens {
    /// Tokens from config entries, an optional token file, and an optional
    /// value of `TRAWL_TOKENS`.
    pub fn load(
        entries: &[TokenEntry],
        file: Option<&Path>,
        env: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut tokens = Tokens::default();
        for entry in entries {
            let digest = entry.digest().map_err(TokenError::Digest)?;
            tokens.digests.push((digest, entry.role));
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
                path: path.display().to_string(),
                source,
            })?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let place = format!("{}:{}", path.display(), number + 1);
                tokens.add_pair(line, place)?;
            }
        }
        if let Some(value) = env {
            for (number, pair) in value.split(',').enumerate() {
                if pair.trim().is_empty() {
                    continue;
                }
                tokens.add_pair(pair.trim(), format!("{TOKENS_ENV} entry {}", number + 1))?;
            }
        }
        Ok(tokens)
    }

    fn add_pair(&mut self, pair: &str, place: String) -> Result<(), TokenError> {
        let malformed = || TokenError::Malformed {
            place: place.clone(),
        };
        let (role, token) = pair.split_once(':').ok_or_else(malformed)?;
        let role = Role::parse(role).ok_or_else(malformed)?;
        if token.chars().count() < TOKEN_CHARS_MIN {
            return Err(malformed());
        }
        self.digests.push((sha256(token.as_bytes()), role));
        Ok(())
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// How many tokens are known.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// The role of `token`, if it is known; the highest one if the same
    /// token was given twice. Every digest is compared, in constant time.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let presented = sha256(token.as_bytes());
        let mut best: Option<Role> = None;
        for (digest, role) in &self.digests {
            let equal: bool = digest.ct_eq(&presented).into();
            if equal {
                best = best.max(Some(*role));
            }
        }
        best
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of `bytes`, hex (for `[server] tokens` entries).
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `given` equals `expected`, in time that depends only on the
/// lengths (both are hashed first, so not even that).
pub fn secret_eq(given: &str, expected: &str) -> bool {
    sha256(given.as_bytes())
        .ct_eq(&sha256(expected.as_bytes()))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &str = "read-token-0123456789";
    const WRITE: &str = "write-token-0123456789";

    #[test]
    fn tokens_from_all_three_places_keep_their_roles() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("tokens");
        std::fs::write(&file, format!("# ops\nwrite:{WRITE}\n")).expect("write");
        let entry = TokenEntry {
            name: "grafana".into(),
            role: Role::Read,
            sha256: sha256_hex(b"config-token-0123456789"),
        };
        let env = format!("read:{READ}");
        let tokens = Tokens::load(&[entry], Some(&file), Some(&env)).expect("loads");
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens.role_of(READ), Some(Role::Read));
        assert_eq!(tokens.role_of(WRITE), Some(Role::Write));
        assert_eq!(tokens.role_of("config-token-0123456789"), Some(Role::Read));
        assert_eq!(tokens.role_of("read-token-012345678"), None);
        assert_eq!(tokens.role_of(""), None);
    }

    #[test]
    fn a_malformed_token_line_names_its_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("tokens");
        std::fs::write(&file, format!("write:{WRITE}\nadmin:{READ}\n")).expect("write");
        let error = Tokens::load(&[], Some(&file), None).expect_err("refused");
        assert!(error.to_string().contains(":2"), "{error}");
        let error = Tokens::load(&[], None, Some("read:short")).expect_err("refused");
        assert!(
            error.to_string().contains("TRAWL_TOKENS entry 1"),
            "{error}"
        );
    }

    #[test]
    fn write_implies_read_and_not_the_reverse() {
        assert!(Role::Write.allows(Role::Read));
        assert!(Role::Write.allows(Role::Write));
        assert!(!Role::Read.allows(Role::Write));
    }

    #[test]
    fn a_bad_digest_is_refused() {
        let entry = TokenEntry {
            name: "x".into(),
            role: Role::Read,
            sha256: "zz".repeat(32),
        };
        assert!(Tokens::load(&[entry], None, None).is_err());
    }

    /// Review finding: `digest` checks the length in bytes and then
    /// slices two bytes at a time, so a multi-byte character panics
    /// instead of being refused.
    #[test]
    fn review_a_non_ascii_digest_is_refused_not_a_panic() {
        let entry = TokenEntry {
            name: "x".into(),
            role: Role::Read,
            sha256: format!("\u{20ac}{}", "a".repeat(61)),
        };
        assert_eq!(entry.sha256.len(), 64);
        let outcome = std::panic::catch_unwind(|| entry.digest());
        assert!(
            matches!(outcome, Ok(Err(_))),
            "digest panicked on a 64-byte non-hex value"
        );
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
    }
}
