//! Error display helpers shared by every module's logs.

use std::error::Error;
use std::fmt;

/// Displays an error with its whole `source()` chain: `outer: inner: root cause`.
///
/// Module errors name the file, device or topic; their sources say what the OS or library
/// said. Logs need both.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            let text = e.to_string();
            // Some errors repeat their source's text; don't print it twice.
            if !self.0.to_string().ends_with(&text) {
                write!(f, ": {text}")?;
            }
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open queue.db")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn shows_the_chain() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(Chain(&e).to_string(), "cannot open queue.db: disk full");
    }
}
