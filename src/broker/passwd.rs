//! Mosquitto password files: reading them (`password_file`), checking a client's password, and
//! writing entries (`ferrule passwd`).
//!
//! The format is Mosquitto's, one `user:hash` per line (`#` comments and blank lines allowed):
//! - `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 (mosquitto_passwd 2.x), any iteration
//!   count and salt length;
//! - `$6$<salt>$<hash>`: SHA-512 over password then salt (mosquitto_passwd 1.x, `-H sha512`).
//!
//! Salt and hash are standard base64 with padding; the hash is 64 bytes. Entries written here are
//! `$7$` with 101 iterations (mosquitto_passwd's default) and a 12-byte salt, which is what
//! Mosquitto 2.0 itself accepts. `$argon2id$` (Mosquitto 2.1) is refused with a clear error.
//!
//! Invariants: a password is never stored, logged or put in an error; hashes are compared in
//! constant time, and an unknown user costs the same hash computation as a known one, so timing
//! tells nothing about which users exist. A malformed line is an error naming the file and line:
//! a user is never silently dropped.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::{digest, pbkdf2, rand::SecureRandom};

/// Length of a SHA-512 hash, the only hash length Mosquitto writes.
const HASH_LEN: usize = 64;
/// PBKDF2 iterations of new entries (mosquitto_passwd 2.0's default).
pub const DEFAULT_ITERATIONS: u32 = 101;
/// Salt length of new entries (the only one Mosquitto 2.0 reads).
const SALT_LEN: usize = 12;

/// Errors of reading or writing a password file.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("cannot read password file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("invalid user name {user:?}: {why}")]
    BadUser { user: String, why: &'static str },
    #[error("cannot get random bytes for the salt")]
    Random,
    #[error("{path} does not exist; use -c to create it")]
    Missing { path: PathBuf },
    #[error("user `{user}` is not in {path}")]
    NoSuchUser { user: String, path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
enum Hash {
    /// `$6$`: SHA-512(password ‖ salt).
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2 {
        iterations: NonZeroU32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha512 { .. } => f.write_str("$6$…"),
            Self::Pbkdf2 { iterations, .. } => write!(f, "$7${iterations}$…"),
        }
    }
}

impl Hash {
    /// Parses the part after `user:`; the error says what is wrong (never quoting the hash).
    fn parse(text: &str) -> Result<Hash, String> {
        if text.starts_with("$argon2id$") {
            return Err("argon2id hashes (Mosquitto 2.1) are not supported; \
                        re-create the entry with `ferrule passwd` or `mosquitto_passwd -H sha512-pbkdf2`"
                .to_owned());
        }
        let fields: Vec<&str> = text.split('$').collect();
        match fields.as_slice() {
            ["", "6", salt, hash] => Ok(Hash::Sha512 {
                salt: decode(salt, "salt")?,
                hash: decode_hash(hash)?,
            }),
            ["", "7", iterations, salt, hash] => {
                let iterations = iterations
                    .parse::<u32>()
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or_else(|| {
                        format!("`{iterations}` is not an iteration count (1 to 4294967295)")
                    })?;
                Ok(Hash::Pbkdf2 {
                    iterations,
                    salt: decode(salt, "salt")?,
                    hash: decode_hash(hash)?,
                })
            }
            ["", kind, ..] if *kind == "6" || *kind == "7" => Err(format!(
                "malformed `${kind}$` hash; expected {}",
                shape(kind)
            )),
            _ if !text.starts_with('$') => Err(
                "the password is not hashed; hash the file with `mosquitto_passwd -U FILE` \
                 or re-create the entry with `ferrule passwd`"
                    .to_owned(),
            ),
            _ => Err(
                "unknown hash type; expected `$7$` (PBKDF2-SHA512) or `$6$` (SHA-512)".to_owned(),
            ),
        }
    }

    fn matches(&self, password: &[u8]) -> bool {
        match self {
            Hash::Sha512 { salt, hash } => {
                let mut ctx = digest::Context::new(&digest::SHA512);
                ctx.update(password);
                ctx.update(salt);
                constant_time_eq(ctx.finish().as_ref(), hash)
            }
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA512,
                *iterations,
                salt,
                password,
                hash,
            )
            .is_ok(),
        }
    }
}

fn shape(kind: &str) -> &'static str {
    if kind == "6" {
        "`$6$<salt>$<hash>`"
    } else {
        "`$7$<iterations>$<salt>$<hash>`"
    }
}

fn decode(b64: &str, what: &str) -> Result<Vec<u8>, String> {
    match B64.decode(b64) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        Ok(_) => Err(format!("the {what} is empty")),
        Err(_) => Err(format!("the {what} is not valid base64")),
    }
}

fn decode_hash(b64: &str) -> Result<Vec<u8>, String> {
    let hash = decode(b64, "hash")?;
    if hash.len() != HASH_LEN {
        return Err(format!(
            "the hash is {} bytes long; expected {HASH_LEN}",
            hash.len()
        ));
    }
    Ok(hash)
}

/// Compares two equal-length byte strings without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

/// What a password check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    WrongPassword,
    UnknownUser,
}

/// The users of a password file.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    users: HashMap<String, Hash>,
    /// Checked for unknown users so they take as long as known ones.
    decoy: Option<Hash>,
}

impl PasswordFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswdError> {
        let text = std::fs::read_to_string(path).map_err(|source| PasswdError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, message)| PasswdError::Invalid {
            path: path.to_owned(),
            line,
            message,
        })
    }

    /// Parses a password file's text; the error is the first bad line (1-based) and why.
    pub fn parse(text: &str) -> Result<PasswordFile, (usize, String)> {
        let mut users = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let Some((user, hash)) = line.split_once(':') else {
                return Err((n, "expected `user:hash`".to_owned()));
            };
            let user = user.trim();
            check_user(user).map_err(|why| (n, format!("user name {why}")))?;
            let hash =
                Hash::parse(hash.trim()).map_err(|why| (n, format!("user `{user}`: {why}")))?;
            if let Some(first) = first_line.get(user) {
                return Err((
                    n,
                    format!("user `{user}` is already defined on line {first}"),
                ));
            }
            first_line.insert(user.to_owned(), n);
            users.insert(user.to_owned(), hash);
        }
        let decoy = users.values().next().cloned();
        Ok(PasswordFile { users, decoy })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks `password` for `user`.
    pub fn verify(&self, user: &str, password: &[u8]) -> Verdict {
        match self.users.get(user) {
            Some(hash) if hash.matches(password) => Verdict::Valid,
            Some(_) => Verdict::WrongPassword,
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = std::hint::black_box(decoy.matches(password));
                }
                Verdict::UnknownUser
            }
        }
    }
}

/// Why a user name cannot go into a password file (Mosquitto's rules), if it cannot.
fn check_user(user: &str) -> Result<(), &'static str> {
    if user.is_empty() {
        Err("is empty")
    } else if user.contains(':') {
        Err("contains `:`")
    } else if user.chars().any(char::is_control) {
        Err("contains a control character")
    } else if user.len() > 65_535 {
        Err("is longer than 65535 bytes")
    } else {
        Ok(())
    }
}

/// A new `user:$7$...` line for `password` with a fresh random salt.
pub fn entry(user: &str, password: &str, iterations: NonZeroU32) -> Result<String, PasswdError> {
    check_user(user).map_err(|why| PasswdError::BadUser {
        user: user.to_owned(),
        why,
    })?;
    if user.trim() != user || user.starts_with('#') {
        return Err(PasswdError::BadUser {
            user: user.to_owned(),
            why: "starts or ends with a space, or starts with `#`",
        });
    }
    let mut salt = [0u8; SALT_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| PasswdError::Random)?;
    let mut hash = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA512,
        iterations,
        &salt,
        password.as_bytes(),
        &mut hash,
    );
    Ok(format!(
        "{user}:$7${iterations}${}${}",
        B64.encode(salt),
        B64.encode(hash)
    ))
}

/// `text` (a password file) with `user`'s line replaced by `line`, or removed when `line` is
/// `None`; a new user is appended. Every other line is kept as it was. Returns the new text and
/// whether `user` was there before.
pub fn update(text: &str, user: &str, line: Option<&str>) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + line.map_or(0, str::len) + 1);
    let mut found = false;
    for raw in text.lines() {
        let is_user = raw
            .trim()
            .split_once(':')
            .is_some_and(|(u, _)| !raw.trim_start().starts_with('#') && u.trim() == user);
        if is_user {
            if !found {
                if let Some(line) = line {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            found = true;
            continue;
        }
        out.push_str(raw);
        out.push('\n');
    }
    if !found {
        if let Some(line) = line {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, found)
}

/// What `ferrule passwd` does to a password file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// Add the user or change its password, in an existing file.
    Set {
        password: &'a str,
        iterations: NonZeroU32,
    },
    /// Create (or overwrite) the file with only this user.
    Create {
        password: &'a str,
        iterations: NonZeroU32,
    },
    /// Remove the user.
    Delete,
}

/// Applies `change` for `user` to the password file at `path`, replacing the file atomically
/// (a new file gets mode 0600, an existing one keeps its permissions).
pub fn edit(path: &Path, user: &str, change: Change<'_>) -> Result<(), PasswdError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(PasswdError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let text = match (change, existing) {
        (
            Change::Create {
                password,
                iterations,
            },
            _,
        ) => {
            let mut line = entry(user, password, iterations)?;
            line.push('\n');
            line
        }
        (_, None) => {
            return Err(PasswdError::Missing {
                path: path.to_owned(),
            })
        }
        (
            Change::Set {
                password,
                iterations,
            },
            Some(text),
        ) => {
            // A file that does not parse is not edited (its error names the line).
            PasswordFile::parse(&text).map_err(|(line, message)| PasswdError::Invalid {
                path: path.to_owned(),
                line,
                message,
            })?;
            let line = entry(user, password, iterations)?;
            update(&text, user, Some(&line)).0
        }
        (Change::Delete, Some(text)) => {
            let (text, found) = update(&text, user, None);
            if !found {
                return Err(PasswdError::NoSuchUser {
                    user: user.to_owned(),
                    path: path.to_owned(),
                });
            }
            text
        }
    };
    replace(path, text.as_bytes()).map_err(|source| PasswdError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over `path`.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha512_entry(password: &str, salt: &[u8]) -> String {
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(password.as_bytes());
        ctx.update(salt);
        format!(
            "$6${}${}",
            B64.encode(salt),
            B64.encode(ctx.finish().as_ref())
        )
    }

    #[test]
    fn pbkdf2_entries_verify_with_any_iterations_and_salt_length() {
        for iterations in [1, 101, 1000] {
            for salt_len in [1usize, 12, 64] {
                let salt = vec![7u8; salt_len];
                let mut hash = [0u8; 64];
                let n = NonZeroU32::new(iterations).expect("non-zero");
                pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA512, n, &salt, b"s3cret", &mut hash);
                let text = format!(
                    "alice:$7${iterations}${}${}\n",
                    B64.encode(&salt),
                    B64.encode(hash)
                );
                let file = PasswordFile::parse(&text).expect("valid");
                assert_eq!(file.verify("alice", b"s3cret"), Verdict::Valid);
                assert_eq!(file.verify("alice", b"s3cret "), Verdict::WrongPassword);
                assert_eq!(file.verify("bob", b"s3cret"), Verdict::UnknownUser);
            }
        }
    }

    #[test]
    fn entries_written_by_mosquitto_passwd_verify() {
        // mosquitto_passwd 2.0.11: `-c -b pw user pass`, then `-H sha512 -b pw old pass6`.
        let text = "user:$7$101$61IDgx5UNPny7fZZ$YW+DYQZ/02MORPuzJY1u/wo3kb/DI9IdfjBQfmt+2q6y14XcG+Hp5nwg5jDJAnQnbW9Os8oCNHZHgiAFOlsxfw==\n\
                    old:$6$55ZujeftdZigBGcb$rTxJBbljdaXUREe2j2Q1KD7Vn/BjlnRx/FaoRxB/hBICKfIY/vn3Vz1sGzAaY/ZxvlWQ0SxJdNnqCvptCxWUNQ==\n";
        let file = PasswordFile::parse(text).expect("valid");
        assert_eq!(file.verify("user", b"pass"), Verdict::Valid);
        assert_eq!(file.verify("user", b"Pass"), Verdict::WrongPassword);
        assert_eq!(file.verify("old", b"pass6"), Verdict::Valid);
        assert_eq!(file.verify("old", b"pass"), Verdict::WrongPassword);
    }

    #[test]
    fn sha512_entries_verify() {
        let text = format!(
            "# a comment\n\nbob:{}\ncarol : {}\n",
            sha512_entry("hunter2", b"twelve bytes"),
            sha512_entry("x", &[1, 2, 3])
        );
        let file = PasswordFile::parse(&text).expect("valid");
        assert_eq!(file.len(), 2);
        assert_eq!(file.verify("bob", b"hunter2"), Verdict::Valid);
        assert_eq!(file.verify("bob", b"hunter3"), Verdict::WrongPassword);
        assert_eq!(file.verify("carol", b"x"), Verdict::Valid);
    }

    #[test]
    fn written_entries_verify_and_look_like_mosquitto_passwd() {
        let n = NonZeroU32::new(DEFAULT_ITERATIONS).expect("non-zero");
        let line = entry("dave", "pässword", n).expect("entry");
        let fields: Vec<&str> = line.split('$').collect();
        assert_eq!(fields[0], "dave:");
        assert_eq!((fields[1], fields[2]), ("7", "101"));
        assert_eq!(B64.decode(fields[3]).expect("salt").len(), 12);
        assert_eq!(B64.decode(fields[4]).expect("hash").len(), 64);
        let file = PasswordFile::parse(&line).expect("valid");
        assert_eq!(file.verify("dave", "pässword".as_bytes()), Verdict::Valid);
        assert_ne!(
            entry("dave", "pässword", n).expect("entry"),
            line,
            "salts differ"
        );
        assert!(entry("a:b", "x", n).is_err());
        assert!(entry("", "x", n).is_err());
        assert!(entry(" a", "x", n).is_err());
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let good = sha512_entry("x", b"salt");
        let cases = [
            ("nocolon\n", 1, "expected `user:hash`"),
            ("a:plain\n", 1, "not hashed"),
            ("a:$5$abc$def\n", 1, "unknown hash type"),
            ("a:$7$abc$def\n", 1, "malformed `$7$` hash"),
            ("a:$7$0$c2FsdA==$aGFzaA==\n", 1, "not an iteration count"),
            ("a:$6$!!!$aGFzaA==\n", 1, "salt is not valid base64"),
            (
                "a:$6$c2FsdA==$aGFzaA==\n",
                1,
                "hash is 4 bytes long; expected 64",
            ),
            ("a:$argon2id$v=19$m=47104,t=1,p=1$x$y\n", 1, "argon2id"),
            (":$6$x$y\n", 1, "user name is empty"),
        ];
        for (text, line, why) in cases {
            let (n, message) = PasswordFile::parse(text).expect_err(text);
            assert_eq!(n, line, "{text}");
            assert!(message.contains(why), "{text}: {message}");
        }
        let dup = format!("a:{good}\n# c\na:{good}\n");
        let (n, message) = PasswordFile::parse(&dup).expect_err("duplicate");
        assert_eq!(
            (n, message.as_str()),
            (3, "user `a` is already defined on line 1")
        );
    }

    #[test]
    fn update_replaces_appends_and_deletes_keeping_other_lines() {
        let text = "# users\nalice:H1\nbob:H2\n";
        assert_eq!(
            update(text, "bob", Some("bob:N")),
            ("# users\nalice:H1\nbob:N\n".to_owned(), true)
        );
        assert_eq!(
            update(text, "carol", Some("carol:N")),
            ("# users\nalice:H1\nbob:H2\ncarol:N\n".to_owned(), false)
        );
        assert_eq!(
            update(text, "alice", None),
            ("# users\nbob:H2\n".to_owned(), true)
        );
        assert_eq!(update("", "x", Some("x:N")), ("x:N\n".to_owned(), false));
        assert_eq!(
            update("# alice:old\n", "alice", Some("alice:N")).0,
            "# alice:old\nalice:N\n"
        );
    }

    #[test]
    fn edit_creates_changes_and_deletes_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        let n = NonZeroU32::new(1).expect("non-zero");
        let set = |password| Change::Set {
            password,
            iterations: n,
        };
        assert!(matches!(
            edit(&path, "a", set("x")),
            Err(PasswdError::Missing { .. })
        ));
        edit(
            &path,
            "a",
            Change::Create {
                password: "pa",
                iterations: n,
            },
        )
        .expect("create");
        edit(&path, "b", set("pb")).expect("add");
        edit(&path, "a", set("pa2")).expect("change");
        let file = PasswordFile::load(&path).expect("load");
        assert_eq!(file.len(), 2);
        assert_eq!(file.verify("a", b"pa2"), Verdict::Valid);
        assert_eq!(file.verify("b", b"pb"), Verdict::Valid);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        edit(&path, "a", Change::Delete).expect("delete");
        assert!(matches!(
            edit(&path, "a", Change::Delete),
            Err(PasswdError::NoSuchUser { .. })
        ));
        let file = PasswordFile::load(&path).expect("load");
        assert_eq!(
            (file.len(), file.verify("a", b"pa2")),
            (1, Verdict::UnknownUser)
        );
    }
}
